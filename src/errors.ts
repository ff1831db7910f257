// One error type and one wire envelope (RFC 9457 application/problem+json).

export const problemCodes = {
  BAD_REQUEST: { status: 400, title: "Bad request" },
  MALFORMED_JSON: { status: 400, title: "Malformed JSON body" },
  UNAUTHORIZED: { status: 401, title: "Authentication required" },
  FORBIDDEN: { status: 403, title: "Forbidden" },
  NOT_FOUND: { status: 404, title: "Not found" },
  METHOD_NOT_ALLOWED: { status: 405, title: "Method not allowed" },
  CONFLICT: { status: 409, title: "Conflict" },
  PRECONDITION_FAILED: { status: 412, title: "Precondition failed" },
  PAYLOAD_TOO_LARGE: { status: 413, title: "Payload too large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "Unsupported media type" },
  VALIDATION_FAILED: { status: 422, title: "Validation failed" },
  PHI_BLOCKED: { status: 422, title: "Protected health information refused" },
  PRECONDITION_REQUIRED: { status: 428, title: "Precondition required" },
  RATE_LIMITED: { status: 429, title: "Too many requests" },
  BUDGET_EXCEEDED: { status: 429, title: "Daily spending cap reached" },
  INTERNAL: { status: 500, title: "Internal server error" },
  BAD_ENVIRONMENT: { status: 500, title: "Server misconfigured" },
  UPSTREAM_UNAVAILABLE: { status: 502, title: "Upstream service unavailable" },
  NOT_READY: { status: 503, title: "Service not ready" },
  DATABASE_UNAVAILABLE: { status: 503, title: "Database unavailable" },
  UPSTREAM_TIMEOUT: { status: 504, title: "Upstream service timed out" },
} as const;

export type ProblemCode = keyof typeof problemCodes;

export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  requestId: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export class ApiError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  readonly extensions: Record<string, unknown>;

  constructor(
    code: ProblemCode,
    detail: string,
    options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      extensions?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(detail, { cause: options.cause });
    this.name = "ApiError";
    this.code = code;
    this.status = problemCodes[code].status;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }
}

const problemTypeUri = (code: ProblemCode) => `urn:voiceassist:problem:${code.toLowerCase()}`;

function problemBody(error: ApiError, requestId: string): Problem {
  return {
    type: problemTypeUri(error.code),
    title: problemCodes[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
    requestId,
    ...(error.errors ? { errors: error.errors } : {}),
    ...error.extensions,
  };
}

export const problemResponse = (error: ApiError, requestId: string): Response =>
  new Response(JSON.stringify(problemBody(error, requestId)), {
    status: error.status,
    headers: { "content-type": "application/problem+json", ...error.headers },
  });

/** Anything that is not an ApiError becomes a 500 that says nothing but the request id. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  return new ApiError("INTERNAL", "An unexpected error occurred. Quote the requestId when reporting it.", {
    cause: error,
  });
}

/** A 422 for one field that a schema could not check on its own (e.g. against stored data). */
export const fieldError = (field: string, message: string) =>
  new ApiError("VALIDATION_FAILED", `The request is invalid: ${field} ${message}.`, { errors: [{ field, message }] });

/**
 * A dependency (OpenAI, Qdrant) failed. The wire code stays UPSTREAM_*; `transient` says whether
 * trying again can help (a 429, a 5xx, a timeout) or not (a 400 or 401: our request or key is wrong).
 */
export class UpstreamError extends ApiError {
  readonly transient: boolean;
  /** How long the service asked us to wait (Retry-After), when it did. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: "UPSTREAM_UNAVAILABLE" | "UPSTREAM_TIMEOUT",
    detail: string,
    options: { transient: boolean; retryAfterMs?: number; cause?: unknown },
  ) {
    super(code, detail, { cause: options.cause });
    this.name = "UpstreamError";
    this.transient = options.transient;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * Whether a failed step is worth retrying later (e.g. by the ingestion queue). Other ApiErrors are
 * permanent when they blame the request or the configuration; unknown errors get the benefit of the doubt.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof UpstreamError) return error.transient;
  if (error instanceof ApiError) return error.status >= 500 && error.code !== "BAD_ENVIRONMENT";
  return true;
}
