import { ApiError } from "../../errors.ts";

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
