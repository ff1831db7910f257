import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { requireRole } from "./auth.ts";

const BEARER = /^Bearer +(\S+) *$/i;

// Hashing first gives equal lengths, so neither the content nor the length of the token leaks.
async function tokensMatch(given: string, expected: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/**
 * Operator routes (/metrics, /health/detailed): the OPERATOR_TOKEN (for scrapers and probes), or a
 * signed-in admin or viewer (access token or API key). Missing or wrong operator token: 401.
 * OPERATOR_TOKEN unset and no user credentials: 403, so the endpoints are closed by default.
 */
export const requireOperator = createMiddleware<AppEnv>(async (c, next) => {
  const given = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
  if ((given && JWT_SHAPE.test(given)) || c.req.header("x-api-key")) return requireRole("admin", "viewer")(c, next);
  const expected = c.var.config.OPERATOR_TOKEN;
  if (!expected) {
    throw new ApiError(
      "FORBIDDEN",
      "Operator endpoints are disabled: set OPERATOR_TOKEN (16+ characters), or sign in as an admin or viewer.",
    );
  }
  if (!given) {
    throw new ApiError("UNAUTHORIZED", "Send the operator token as Authorization: Bearer <OPERATOR_TOKEN>.", {
      headers: { "WWW-Authenticate": 'Bearer realm="operator"' },
    });
  }
  if (!(await tokensMatch(given, expected))) {
    throw new ApiError("UNAUTHORIZED", "The bearer token is not the operator token; send OPERATOR_TOKEN.", {
      headers: { "WWW-Authenticate": 'Bearer realm="operator", error="invalid_token"' },
    });
  }
  await next();
});
