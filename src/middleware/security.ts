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

/** CORS for the origins listed in CORS_ORIGINS; every other origin gets no CORS headers. */
export const corsFromConfig = createMiddleware<AppEnv>((c, next) =>
  cors({
    origin: (origin) => (c.var.config.CORS_ORIGINS.includes(origin) ? origin : null),
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
  })(c, next),
);
