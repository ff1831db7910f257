// The platform's error envelope (RFC 9457 application/problem+json, docs/api.md) as a typed error.

export interface FieldError {
  field: string;
  message: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** Stable: branch on it (UNAUTHORIZED, VALIDATION_FAILED, ...). */
  code: string;
  /** Quote it when reporting a failure. */
  requestId: string;
  errors?: FieldError[];
}

/** A non-2xx answer of the API. A body that is not a problem (a proxy's page) keeps its status, code UNKNOWN. */
export class ApiProblem extends Error implements ProblemBody {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly requestId: string;
  readonly errors: FieldError[];

  constructor(status: number, body: Partial<ProblemBody>) {
    super(`${status} ${body.code ?? "UNKNOWN"}: ${body.detail ?? "request failed"}`);
    this.name = "ApiProblem";
    this.status = status;
    this.type = body.type ?? "about:blank";
    this.title = body.title ?? "";
    this.detail = body.detail ?? "";
    this.code = body.code ?? "UNKNOWN";
    this.requestId = body.requestId ?? "";
    this.errors = Array.isArray(body.errors) ? body.errors : [];
  }

  /** The message for one field of a 422 (`body.title`), if the server named it. */
  fieldError(field: string): string | undefined {
    return this.errors.find((e) => e.field === field)?.message;
  }
}

/** The problem a response carries; its text is read once. */
export async function problemOf(res: Response): Promise<ApiProblem> {
  const text = await res.text();
  let body: Partial<ProblemBody> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Partial<ProblemBody>;
  } catch {
    body = { detail: text.slice(0, 200) };
  }
  return new ApiProblem(res.status, body);
}
