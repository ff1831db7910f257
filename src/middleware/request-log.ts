import { createMiddleware } from "hono/factory";
import { routePath } from "hono/route";
import type { AppEnv } from "../app-env.ts";
import { log } from "../observability/log.ts";

/** The route template of the handler that answered, or "unmatched" (keeps label cardinality bounded). */
export function routeTemplate(c: Parameters<Parameters<typeof createMiddleware<AppEnv>>[0]>[0]): string {
  const path = routePath(c, -1);
  return path && path !== "/*" && path !== "*" ? path : "unmatched";
}

/** One structured line per request, written after the response is known. */
export const requestLog = createMiddleware<AppEnv>(async (c, next) => {
  const started = performance.now();
  await next();
  const status = c.res.status;
  log(status >= 500 ? "error" : status >= 400 ? "warn" : "info", "request", {
    method: c.req.method,
    route: routeTemplate(c),
    path: c.req.path,
    status,
    duration_ms: Math.round((performance.now() - started) * 100) / 100,
    ...(c.var.userId ? { user_id: c.var.userId } : {}),
  });
});
