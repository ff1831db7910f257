import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { currentWorkContext, runInWorkContext, type WorkContext } from "../observability/context.ts";
import { acceptRequestId, formatTraceparent, traceFromHeaders } from "../observability/trace.ts";

/**
 * Accepts a well-formed X-Request-Id (else makes one) and continues a valid W3C trace (else
 * starts one); both are echoed and made available to every outbound call via the work context.
 */
export const requestContext = createMiddleware<AppEnv>(async (c, next) => {
  const requestId = acceptRequestId(c.req.header("x-request-id"));
  const trace = traceFromHeaders(c.req.header("traceparent") ?? null, c.req.header("tracestate") ?? null);
  c.set("requestId", requestId);
  c.set("trace", trace);
  const context: WorkContext = {
    requestId,
    trace,
    ip: c.req.header("cf-connecting-ip"),
    userAgent: c.req.header("user-agent")?.slice(0, 512),
  };
  await runInWorkContext(context, () => next());
  c.header("X-Request-Id", requestId);
  c.header("traceparent", formatTraceparent(trace));
  if (trace.tracestate) c.header("tracestate", trace.tracestate);
});

/** Called by authentication once the caller is known: logs, metrics and Sentry carry the user id. */
export function setRequestUser(c: Context<AppEnv>, userId: string): void {
  c.set("userId", userId);
  const context = currentWorkContext();
  if (context) context.userId = userId;
  c.var.sentry?.setUser({ id: userId });
}
