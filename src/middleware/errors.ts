import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../app-env.ts";
import { apiErrorOf } from "../db/unavailable.ts";
import { ApiError, type ProblemCode, problemResponse, toApiError } from "../errors.ts";
import { describeError, reportableError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";

const fromHttpException = (e: HTTPException): ApiError => {
  const byStatus: Record<number, ProblemCode> = {
    400: /json/i.test(e.message) ? "MALFORMED_JSON" : "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
  };
  const code = byStatus[e.status];
  return code ? new ApiError(code, e.message || "The request was refused.", { cause: e }) : toApiError(e);
};

/** Every thrown error leaves as problem+json; a 5xx carries nothing but the request id. */
export const handleError: ErrorHandler<AppEnv> = (error, c) => {
  const apiError = error instanceof HTTPException ? fromHttpException(error) : apiErrorOf(error);
  if (apiError.code === "INTERNAL") {
    log("error", "unhandled error", { code: apiError.code, error: describeError(apiError.cause ?? apiError) });
    c.var.sentry?.captureException(reportableError(apiError.cause ?? apiError));
  } else if (apiError.code.startsWith("UPSTREAM_") || apiError.code === "DATABASE_UNAVAILABLE") {
    // A dependency failing is an operational event, not a bug: logged with its cause, not sent to Sentry.
    log("warn", "upstream failure", { code: apiError.code, error: describeError(apiError.cause ?? apiError) });
  }
  return problemResponse(apiError, requestIdOf(c));
};

export const notFound: NotFoundHandler<AppEnv> = (c) =>
  problemResponse(new ApiError("NOT_FOUND", `No route matches ${c.req.method} ${c.req.path}.`), requestIdOf(c));

export const methodNotAllowedProblem = (c: Context<AppEnv>, allowed: string[]) =>
  problemResponse(
    new ApiError("METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(", ")}.`, {
      headers: { Allow: allowed.join(", ") },
    }),
    requestIdOf(c),
  );

// Errors can happen before the request-context middleware ran (e.g. inside it).
const requestIdOf = (c: Context<AppEnv>) => c.var.requestId ?? crypto.randomUUID();
