import { createRoute, z } from "@hono/zod-openapi";
import { recordAudit } from "../audit/record.ts";
import { PasswordField, RoleField } from "../auth/accounts.ts";
import { type ApiKeyRow, createApiKey, listApiKeys, revokeApiKey } from "../auth/api-keys.ts";
import { newApiKey } from "../auth/authenticate.ts";
import { sha256Hex } from "../auth/crypto.ts";
import { hashPassword, verifyPassword } from "../auth/password.ts";
import { passwordProblem } from "../auth/password-policy.ts";
import { atMost } from "../auth/principal.ts";
import { createRevocationList } from "../auth/revocation/index.ts";
import { sessionEndEvents } from "../auth/session-ends.ts";
import { revokeAllSessions } from "../auth/sessions.ts";
import { findUser, setPassword } from "../auth/users-store.ts";
import { createDb } from "../db/client.ts";
import { ApiError, fieldError } from "../errors.ts";
import { forgetFlagCallersOf } from "../flags/request.ts";
import { displayName } from "../input/names.ts";
import { recordMetrics } from "../metrics/record.ts";
import { principalOf, requireUser } from "../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

const ChangePassword = z.object({ current_password: PasswordField, new_password: PasswordField });

const ApiKey = z
  .object({
    id: z.uuid(),
    name: z.string(),
    prefix: z.string(),
    role: RoleField,
    expires_at: z.iso.datetime().nullable(),
    last_used_at: z.iso.datetime().nullable(),
    created_at: z.iso.datetime(),
    revoked_at: z.iso.datetime().nullable(),
  })
  .openapi("ApiKey");

const CreatedApiKey = ApiKey.extend({ key: z.string().describe("The whole key. Shown once; store it now.") }).openapi(
  "CreatedApiKey",
);

const CreateApiKey = z.object({
  name: displayName(100),
  role: RoleField.optional().describe("At most your own role; defaults to it."),
  expires_in_days: z.number().int().min(1).optional().describe("Default 90; at most API_KEY_MAX_DAYS (365)."),
});

const toApiKey = (k: ApiKeyRow) => ({
  id: k.id,
  name: k.name,
  prefix: `va_k_${k.prefix}`,
  role: k.role,
  expires_at: k.expiresAt?.toISOString() ?? null,
  last_used_at: k.lastUsedAt?.toISOString() ?? null,
  created_at: k.createdAt.toISOString(),
  revoked_at: k.revokedAt?.toISOString() ?? null,
});

const DEFAULT_KEY_DAYS = 90;

export const userRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/users/me/change-password",
      tags: ["users"],
      summary: "Change your password; every session ends",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { body: jsonBody(ChangePassword) },
      responses: {
        204: { description: "Changed; sign in again" },
        401: problem("Not signed in, or the current password is wrong"),
        422: problem("The new password breaks the policy"),
      },
    }),
    async (c) => {
      const { current_password, new_password } = c.req.valid("json");
      const principal = principalOf(c);
      const config = c.var.config;
      const db = createDb(config);
      const user = await findUser(db, principal.userId);
      if (!user) throw new ApiError("NOT_FOUND", "The account no longer exists.");
      const weakness = passwordProblem(new_password, user.email);
      if (weakness) throw fieldError("body.new_password", weakness);
      if (!(await verifyPassword(current_password, user.passwordHash)).ok) {
        await recordAudit(config, {
          action: "auth.password_changed",
          outcome: "failure",
          target: { type: "user", id: user.id },
        });
        throw new ApiError("UNAUTHORIZED", "The current password is wrong.");
      }
      await setPassword(db, user.id, await hashPassword(new_password));
      const ended = await revokeAllSessions(db, user.id, "password_changed");
      await recordMetrics(c.env, c.executionCtx, ...sessionEndEvents(ended));
      forgetFlagCallersOf({ userId: user.id });
      if (principal.tokenId && principal.tokenExpiresAt) {
        await createRevocationList(config).revoke(principal.tokenId, principal.tokenExpiresAt);
      }
      await recordAudit(config, {
        action: "auth.password_changed",
        target: { type: "user", id: user.id },
        metadata: { sessions_ended: ended.length },
      });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/users/me/api-keys",
      tags: ["users"],
      summary: "Create an API key (shown once)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { body: jsonBody(CreateApiKey) },
      responses: {
        201: jsonResponse("The key, including its secret, shown this once", CreatedApiKey),
        401: problem("Not signed in"),
        403: problem("The requested role is above your own"),
        422: problem("A field is invalid"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const principal = principalOf(c);
      const config = c.var.config;
      const role = body.role ?? principal.role;
      if (atMost(role, principal.role) !== role) {
        throw new ApiError("FORBIDDEN", `A key can carry at most your own role (${principal.role}).`);
      }
      const days = body.expires_in_days ?? Math.min(DEFAULT_KEY_DAYS, config.API_KEY_MAX_DAYS);
      if (days > config.API_KEY_MAX_DAYS) {
        throw fieldError("body.expires_in_days", `must be at most ${config.API_KEY_MAX_DAYS}`);
      }
      const { prefix, key } = newApiKey();
      const created = await createApiKey(createDb(config), {
        userId: principal.userId,
        name: body.name,
        prefix,
        keyHash: await sha256Hex(key),
        role,
        expiresAt: new Date(Date.now() + days * 86_400_000),
      });
      await recordAudit(config, {
        action: "api_key.created",
        target: { type: "api_key", id: created.id },
        after: { name: created.name, role, expires_at: created.expiresAt },
      });
      return c.json({ ...toApiKey(created), key }, 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/users/me/api-keys",
      tags: ["users"],
      summary: "Your API keys (without secrets)",
      security: signedIn,
      middleware: [requireUser] as const,
      responses: {
        200: jsonResponse("Keys, newest first", z.object({ items: z.array(ApiKey) })),
        401: problem("Not signed in"),
      },
    }),
    async (c) => {
      const keys = await listApiKeys(createDb(c.var.config), principalOf(c).userId);
      return c.json({ items: keys.map(toApiKey) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/users/me/api-keys/{id}",
      tags: ["users"],
      summary: "Revoke one of your API keys",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: z.object({ id: z.uuid() }) },
      responses: {
        204: { description: "Revoked" },
        401: problem("Not signed in"),
        404: problem("No such key of yours"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const revoked = await revokeApiKey(createDb(c.var.config), principalOf(c).userId, id);
      if (!revoked) throw new ApiError("NOT_FOUND", "You have no active API key with this id.");
      forgetFlagCallersOf({ apiKeyId: id });
      await recordAudit(c.var.config, { action: "api_key.revoked", target: { type: "api_key", id } });
      return c.body(null, 204);
    },
  );
