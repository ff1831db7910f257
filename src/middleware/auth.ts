import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { recordActivity } from "../auth/activity.ts";
import { API_KEY_PREFIX, principalFromAccessToken, principalFromApiKey, touchApiKey } from "../auth/authenticate.ts";
import type { Principal, Role } from "../auth/principal.ts";
import { createRevocationList } from "../auth/revocation/index.ts";
import { createDb } from "../db/client.ts";
import { ApiError } from "../errors.ts";
import { setRequestUser } from "./request-context.ts";

const BEARER = /^Bearer +(\S+) *$/i;

/** The credential of a request: an API key header, or a bearer token (access token, or an API key). */
interface Credential {
  apiKey?: string;
  bearer?: string;
}

/** The credential a request carries in its headers. */
export const headerCredential = (c: Context<AppEnv>): Credential => {
  const authorization = c.req.header("authorization") ?? "";
  return {
    // Unleash SDKs send their token as the bare Authorization value.
    apiKey: c.req.header("x-api-key") ?? (authorization.startsWith(API_KEY_PREFIX) ? authorization.trim() : undefined),
    bearer: BEARER.exec(authorization)?.[1],
  };
};

async function authenticate(c: Context<AppEnv>, { apiKey, bearer }: Credential): Promise<Principal> {
  const config = c.var.config;
  const db = createDb(config);
  if (apiKey) {
    const { principal, stale } = await principalFromApiKey(db, apiKey);
    if (stale) c.executionCtx.waitUntil(touchApiKey(db, principal.apiKeyId as string));
    return principal;
  }
  // Clients built for OpenAI send whatever key they hold as a bearer token: ours may be an API key.
  if (bearer?.startsWith(API_KEY_PREFIX)) return authenticate(c, { apiKey: bearer });
  if (bearer) return principalFromAccessToken(db, config, createRevocationList(config), bearer);
  throw new ApiError("UNAUTHORIZED", "Sign in: send Authorization: Bearer <access token> or X-API-Key.", {
    headers: { "WWW-Authenticate": 'Bearer realm="voiceassist"' },
  });
}

/** Signs in the caller from a credential the route found elsewhere (e.g. a WebSocket subprotocol). */
export async function signIn(c: Context<AppEnv>, credential: Credential = headerCredential(c)): Promise<Principal> {
  const principal = await authenticate(c, credential);
  c.set("principal", principal);
  setRequestUser(c, principal.userId);
  c.executionCtx.waitUntil(recordActivity(c.env, c.var.config, principal.userId));
  return principal;
}

/** Any signed-in caller (access token or API key); sets c.var.principal. */
export const requireUser = createMiddleware<AppEnv>(async (c, next) => {
  await signIn(c);
  await next();
});

/** A signed-in caller holding one of these roles; others get 403. */
export const requireRole = (...roles: Role[]) =>
  createMiddleware<AppEnv>(async (c, next) => {
    await requireUser(c, async () => {
      const role = c.var.principal?.role;
      if (!role || !roles.includes(role)) {
        throw new ApiError("FORBIDDEN", `This needs the role ${roles.join(" or ")}; you are ${role ?? "anonymous"}.`);
      }
      await next();
    });
  });

/** The two role sets of the API: admins write; admins and viewers read the admin area. */
export const requireAdmin = requireRole("admin");
export const requireAdminOrViewer = requireRole("admin", "viewer");

/** The authenticated caller; only valid behind requireUser/requireRole. */
export const principalOf = (c: Context<AppEnv>): Principal => {
  const principal = c.var.principal;
  if (!principal) throw new Error("principalOf used on a route without requireUser");
  return principal;
};
