import { createMiddleware } from "hono/factory";
import { Toucan } from "toucan-js";
import type { AppEnv } from "../app-env.ts";
import { redact, redactText } from "../observability/redact.ts";

/**
 * Reports 5xx errors to Sentry when SENTRY_DSN is set, tagged with release, environment,
 * request id, trace id and user id. Bodies, cookies and sensitive headers never leave.
 */
export const sentry = createMiddleware<AppEnv>(async (c, next) => {
  const { SENTRY_DSN, APP_VERSION, GIT_COMMIT, ENVIRONMENT } = c.var.config;
  if (SENTRY_DSN) {
    const toucan = new Toucan({
      dsn: SENTRY_DSN,
      context: c.executionCtx,
      request: c.req.raw,
      release: `voiceassist@${APP_VERSION}+${GIT_COMMIT}`,
      environment: ENVIRONMENT,
      sendDefaultPii: false,
      requestDataOptions: {
        allowedHeaders: ["user-agent", "content-type", "x-request-id", "traceparent"],
        allowedSearchParams: /^$/,
        allowedCookies: /^$/,
        allowedIps: false,
      },
      beforeSend: (event) => ({
        ...redact(event),
        ...(event.message ? { message: redactText(event.message) } : {}),
      }),
    });
    toucan.setTag("request_id", c.var.requestId);
    toucan.setTag("trace_id", c.var.trace.traceId);
    toucan.setContext("trace", { trace_id: c.var.trace.traceId, span_id: c.var.trace.spanId });
    c.set("sentry", toucan);
  }
  await next();
});
