import { createRoute, z } from "@hono/zod-openapi";
import { recordAudit } from "../audit/record.ts";
import {
  EmailField,
  FullNameField,
  PasswordField,
  PublicUser,
  publicUser,
  withPasswordPolicy,
} from "../auth/accounts.ts";
import { sha256Hex } from "../auth/crypto.ts";
import { decoyHash, hashPassword, verifyPassword } from "../auth/password.ts";
import { passwordProblem } from "../auth/password-policy.ts";
import { findPendingReset, spendPasswordReset } from "../auth/password-resets.ts";
import { createRevocationList } from "../auth/revocation/index.ts";
import { sessionEndEvents } from "../auth/session-ends.ts";
import {
  listActiveSessions,
  revokeAllSessions,
  revokeSession,
  rotateRefreshToken,
  startSession,
} from "../auth/sessions.ts";
import { createUser, findUser, findUserByEmail, recordLogin, setPassword } from "../auth/users-store.ts";
import { createDb } from "../db/client.ts";
import { ApiError, fieldError } from "../errors.ts";
import { forgetFlagCallersOf } from "../flags/request.ts";
import { recordMetrics } from "../metrics/record.ts";
import { principalOf, requireUser } from "../middleware/auth.ts";
import { clientIpKey, rateLimit } from "../middleware/rate-limit.ts";
import { currentWorkContext } from "../observability/context.ts";
import { assertNotLockedOut, clearLoginFailures, enforceRateLimit, recordLoginFailure } from "../rate-limit/limits.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

const Tokens = z
  .object({
    access_token: z.string(),
    refresh_token: z.string(),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int(),
    refresh_expires_in: z.number().int(),
    user: z.object({ id: z.uuid(), email: z.string(), role: z.enum(["user", "viewer", "admin"]) }),
  })
  .openapi("Tokens");

const Session = z
  .object({
    id: z.uuid(),
    created_at: z.iso.datetime(),
    last_used_at: z.iso.datetime(),
    expires_at: z.iso.datetime(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    current: z.boolean(),
  })
  .openapi("Session");

const Register = z
  .object({ email: EmailField, password: PasswordField, full_name: FullNameField })
  .superRefine(withPasswordPolicy("password", "email"));

const Login = z.object({ email: EmailField, password: PasswordField });
const Refresh = z.object({ refresh_token: z.string().min(1).max(512) });
const RedeemReset = z.object({ token: z.string().min(1).max(512), new_password: PasswordField });

const invalidCredentials = () =>
  new ApiError("UNAUTHORIZED", "The email or password is wrong.", {
    headers: { "WWW-Authenticate": 'Bearer realm="voiceassist"' },
  });

const sessionEnded = (detail: string) =>
  new ApiError("UNAUTHORIZED", detail, {
    headers: { "WWW-Authenticate": 'Bearer realm="voiceassist", error="invalid_token"' },
  });

export const authRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/auth/register",
      tags: ["auth"],
      summary: "Create an account (role user)",
      middleware: [rateLimit("register", clientIpKey)] as const,
      request: { body: jsonBody(Register) },
      responses: {
        201: jsonResponse("The new account", PublicUser),
        409: problem("An account cannot be created with these details"),
        422: problem("A field is invalid (the password policy reports on password)"),
        429: problem("Too many registrations from this address"),
      },
    }),
    async (c) => {
      const { email, password, full_name } = c.req.valid("json");
      const db = createDb(c.var.config);
      // Hash before looking anything up: a duplicate costs the same time as a new account.
      const passwordHash = await hashPassword(password);
      const created = await createUser(db, { email, fullName: full_name, passwordHash });
      if (!created) {
        throw new ApiError(
          "CONFLICT",
          "An account cannot be created with these details. If you already have one, sign in or ask an admin to reset your password.",
        );
      }
      await recordAudit(c.var.config, {
        action: "auth.register",
        actor: { type: "user", id: created.id },
        target: { type: "user", id: created.id },
      });
      await recordMetrics(c.env, c.executionCtx, { name: "auth_registrations_total", labels: {}, value: 1 });
      return c.json(publicUser(created), 201, { Location: `/api/admin/users/${created.id}` });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/auth/login",
      tags: ["auth"],
      summary: "Sign in with email and password",
      request: { body: jsonBody(Login) },
      responses: {
        200: jsonResponse("Access and refresh tokens", Tokens),
        401: problem("Wrong email or password"),
        403: problem("The account is deactivated"),
        429: problem("Too many attempts, or locked after repeated failures (Retry-After)"),
      },
    }),
    async (c) => {
      const { email, password } = c.req.valid("json");
      const config = c.var.config;
      const db = createDb(config);
      const lockKey = `${clientIpKey(c)}|${email}`;
      // Counted per IP and email, so the limit needs the validated body (a rate limiter never parses input).
      await enforceRateLimit(c.env, "login", lockKey, config.RATE_LIMIT_LOGIN);
      await assertNotLockedOut(c.env, lockKey);
      const user = await findUserByEmail(db, email);
      const usable = user && !user.deletedAt;
      const check = await verifyPassword(password, usable ? user.passwordHash : await decoyHash());
      const loginMetric = (outcome: string) =>
        recordMetrics(c.env, c.executionCtx, { name: "auth_logins_total", labels: { outcome }, value: 1 });
      if (!usable || !check.ok) {
        await recordLoginFailure(c.env, lockKey, {
          threshold: config.LOGIN_LOCKOUT_THRESHOLD,
          baseSeconds: config.LOGIN_LOCKOUT_BASE_SECONDS,
          maxSeconds: config.LOGIN_LOCKOUT_MAX_SECONDS,
        });
        await recordAudit(config, {
          action: "auth.login",
          outcome: "failure",
          actor: { type: "anonymous" },
          target: { type: "user", id: usable ? user.id : null },
          metadata: { reason: usable ? "wrong_password" : "unknown_account" },
        });
        await loginMetric("failure");
        throw invalidCredentials();
      }
      if (!user.isActive) {
        await recordAudit(config, {
          action: "auth.login",
          outcome: "denied",
          actor: { type: "user", id: user.id },
          target: { type: "user", id: user.id },
          metadata: { reason: "deactivated" },
        });
        await loginMetric("deactivated");
        throw new ApiError("FORBIDDEN", "This account is deactivated; ask an admin to reactivate it.");
      }
      await clearLoginFailures(c.env, lockKey);
      // Upgrade a hash made with weaker parameters while the plain password is at hand.
      await recordLogin(db, user.id, check.needsRehash ? await hashPassword(password) : undefined);
      const context = currentWorkContext();
      const tokens = await startSession(db, config, user, { ip: context?.ip, userAgent: context?.userAgent });
      await recordAudit(config, {
        action: "auth.login",
        actor: { type: "user", id: user.id },
        target: { type: "user", id: user.id },
        metadata: check.needsRehash ? { password_hash_upgraded: true } : {},
      });
      await loginMetric("success");
      return c.json(tokens, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/auth/refresh",
      tags: ["auth"],
      summary: "Exchange a refresh token for new tokens (the old one is spent)",
      middleware: [rateLimit("refresh", clientIpKey)] as const,
      request: { body: jsonBody(Refresh) },
      responses: {
        200: jsonResponse("New access and refresh tokens", Tokens),
        401: problem("Unknown, expired, revoked or reused refresh token"),
        409: problem("The token was just used by a concurrent refresh"),
        429: problem("Too many refreshes"),
      },
    }),
    async (c) => {
      const config = c.var.config;
      const outcome = await rotateRefreshToken(createDb(config), config, c.req.valid("json").refresh_token);
      await recordMetrics(
        c.env,
        c.executionCtx,
        { name: "auth_refreshes_total", labels: { outcome: outcome.kind }, value: 1 },
        ...(outcome.kind === "reused"
          ? [{ name: "auth_refresh_reuse_total" as const, labels: {}, value: 1 }, ...sessionEndEvents(outcome.ended)]
          : []),
      );
      switch (outcome.kind) {
        case "rotated":
          return c.json(outcome.tokens, 200);
        case "raced":
          throw new ApiError(
            "CONFLICT",
            "This refresh token was just used by another request; use the tokens it returned.",
          );
        case "reused":
          forgetFlagCallersOf({ sessionId: outcome.sessionId });
          await recordAudit(config, {
            action: "auth.refresh_reuse",
            outcome: "denied",
            actor: { type: "anonymous" },
            target: { type: "session", id: outcome.sessionId },
            metadata: { user_id: outcome.userId, family_revoked: true },
          });
          throw sessionEnded("This refresh token was already used; the session has been ended. Sign in again.");
        default:
          throw sessionEnded(`The refresh token is not valid (${outcome.reason}); sign in again.`);
      }
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/auth/logout",
      tags: ["auth"],
      summary: "End this session: its refresh family and the presented access token",
      security: signedIn,
      middleware: [requireUser] as const,
      responses: { 204: { description: "Signed out" }, 401: problem("Not signed in") },
    }),
    async (c) => {
      const principal = principalOf(c);
      const config = c.var.config;
      if (principal.sessionId) {
        const ended = await revokeSession(createDb(config), principal.sessionId, "logout");
        await recordMetrics(c.env, c.executionCtx, ...sessionEndEvents(ended));
      }
      if (principal.tokenId && principal.tokenExpiresAt) {
        await createRevocationList(config).revoke(principal.tokenId, principal.tokenExpiresAt);
      }
      forgetFlagCallersOf({ sessionId: principal.sessionId });
      await recordAudit(config, {
        action: "auth.logout",
        target: { type: "session", id: principal.sessionId ?? null },
      });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/auth/me",
      tags: ["auth"],
      summary: "The signed-in user",
      security: signedIn,
      middleware: [requireUser] as const,
      responses: { 200: jsonResponse("The user", PublicUser), 401: problem("Not signed in") },
    }),
    async (c) => {
      const user = await findUser(createDb(c.var.config), principalOf(c).userId);
      if (!user) throw new ApiError("NOT_FOUND", "The account no longer exists.");
      return c.json(publicUser(user), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/auth/sessions",
      tags: ["auth"],
      summary: "The signed-in user's live sessions",
      security: signedIn,
      middleware: [requireUser] as const,
      responses: {
        200: jsonResponse("Sessions, most recently used first", z.object({ items: z.array(Session) })),
        401: problem("Not signed in"),
      },
    }),
    async (c) => {
      const principal = principalOf(c);
      const sessions = await listActiveSessions(createDb(c.var.config), c.var.config, principal.userId);
      return c.json(
        {
          items: sessions.map((s) => ({
            id: s.id,
            created_at: s.createdAt.toISOString(),
            last_used_at: s.lastUsedAt.toISOString(),
            expires_at: s.expiresAt.toISOString(),
            ip: s.ip,
            user_agent: s.userAgent,
            current: s.id === principal.sessionId,
          })),
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/auth/sessions/{id}",
      tags: ["auth"],
      summary: "End one of the signed-in user's sessions",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: z.object({ id: z.uuid() }) },
      responses: {
        204: { description: "Ended" },
        401: problem("Not signed in"),
        404: problem("No such session of yours"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const principal = principalOf(c);
      const db = createDb(c.var.config);
      const own = (await listActiveSessions(db, c.var.config, principal.userId)).some((s) => s.id === id);
      // Someone else's session is "not found" too: its existence is not this caller's business.
      const ended = own ? await revokeSession(db, id, "user_revoked") : [];
      if (!ended.length) throw new ApiError("NOT_FOUND", "You have no live session with this id.");
      await recordMetrics(c.env, c.executionCtx, ...sessionEndEvents(ended));
      forgetFlagCallersOf({ sessionId: id });
      await recordAudit(c.var.config, { action: "auth.session_revoked", target: { type: "session", id } });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/auth/password-reset",
      tags: ["auth"],
      summary: "Set a new password with a one-time reset token from an admin; every session ends",
      request: { body: jsonBody(RedeemReset) },
      responses: {
        204: { description: "Password set; sign in with it" },
        400: problem("The token is unknown, used or expired"),
        422: problem("The new password breaks the policy"),
      },
    }),
    async (c) => {
      const { token, new_password } = c.req.valid("json");
      const config = c.var.config;
      const db = createDb(config);
      const tokenHash = await sha256Hex(token);
      const pending = await findPendingReset(db, tokenHash);
      if (!pending)
        throw new ApiError(
          "BAD_REQUEST",
          "This reset token is unknown, already used or expired; ask an admin for a new one.",
        );
      const weakness = passwordProblem(new_password, pending.email);
      if (weakness) throw fieldError("body.new_password", weakness);
      const passwordHash = await hashPassword(new_password);
      // Spending the token is the guard: of two concurrent redemptions only one sets the password.
      if (!(await spendPasswordReset(db, tokenHash)))
        throw new ApiError("BAD_REQUEST", "This reset token was already used.");
      await setPassword(db, pending.userId, passwordHash);
      const ended = await revokeAllSessions(db, pending.userId, "password_reset");
      await recordMetrics(c.env, c.executionCtx, ...sessionEndEvents(ended));
      forgetFlagCallersOf({ userId: pending.userId });
      await recordAudit(config, {
        action: "auth.password_reset",
        actor: { type: "user", id: pending.userId },
        target: { type: "user", id: pending.userId },
        metadata: { sessions_ended: ended.length },
      });
      return c.body(null, 204);
    },
  );
