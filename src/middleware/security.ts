import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "../app-env.ts";

/** An API serves no HTML: the strictest CSP, no framing, no sniffing, HSTS. */
export const securityHeaders = secureHeaders({
  contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  strictTransportSecurity: "max-age=63072000; includeSubDomains",
  crossOriginResourcePolicy: "same-site",
  xFrameOptions: "DENY",
});

/**
 * Answers are per caller and often carry secrets (tokens, API keys, tickets), so no cache keeps one
 * unless its route says otherwise (its own Cache-Control, or an ETag to revalidate).
 */
export const noStoreByDefault = createMiddleware<AppEnv>(async (c, next) => {
  await next();
  if (!hasMutableHeaders(c.res)) c.res = new Response(c.res.body, c.res);
  const headers = c.res.headers;
  if (c.res.status !== 101 && !headers.has("cache-control") && !headers.has("etag")) {
    headers.set("Cache-Control", "no-store");
  }
});

// A response passed on from a Durable Object (WebSocket upgrade, SSE) has immutable headers, and the
// middleware around this one adds headers to every response: such a response gets a copy.
function hasMutableHeaders(res: Response): boolean {
  try {
    res.headers.set("X-Content-Type-Options", "nosniff"); // secureHeaders sets the same value
    return true;
  } catch {
    return false;
  }
}

/** CORS for the origins listed in CORS_ORIGINS; every other origin (or none) gets no CORS header at all. */
export const corsFromConfig = createMiddleware<AppEnv>((c, next) => {
  const origin = c.req.header("origin");
  if (!origin || !c.var.config.CORS_ORIGINS.includes(origin)) return next();
  return cors({
    origin,
    allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    allowHeaders: [
      "Authorization",
      "Content-Type",
      "X-Request-Id",
      "X-API-Key",
      "If-Match",
      "If-None-Match",
      "Last-Event-ID",
      "traceparent",
      "tracestate",
    ],
    exposeHeaders: ["X-Request-Id", "traceparent", "ETag", "Retry-After", "Location"],
    maxAge: 600,
    credentials: true,
  })(c, next);
});
