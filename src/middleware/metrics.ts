import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { routeTemplate } from "./request-log.ts";

// Hono's getter throws when the app runs without one (app.request() in tests).
const executionContextOf = (c: Context<AppEnv>) => {
  try {
    return c.executionCtx;
  } catch {
    return undefined;
  }
};

/**
 * Counts every answered request and times it, by method, route template (never the raw path, so
 * cardinality stays bounded) and status. Recording runs in waitUntil, after the response.
 */
export const httpMetrics = createMiddleware<AppEnv>(async (c, next) => {
  const started = performance.now();
  await next();
  const labels = { method: c.req.method, route: routeTemplate(c), status: String(c.res.status) };
  const seconds = (performance.now() - started) / 1000;
  await recordMetrics(
    c.env,
    executionContextOf(c),
    { name: "http_requests_total", labels, value: 1 },
    { name: "http_request_duration_seconds", labels, value: seconds },
  );
});
