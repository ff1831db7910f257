import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, isNull, sql } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import { withPoolDb } from "../adapters/db/client.ts";
import { users } from "../adapters/db/schema/identity.ts";
import type { AppEnv } from "../app-env.ts";
import { recordAudit } from "../audit/record.ts";
import {
  EmailField,
  FullNameField,
  PasswordField,
  PublicUser,
  publicUser,
  withPasswordPolicy,
} from "../auth/accounts.ts";
import { secretsEqual } from "../auth/crypto.ts";
import { hashPassword } from "../auth/password.ts";
import { ApiError } from "../errors.ts";
import { createRouter, jsonBody, jsonResponse, problem } from "./router.ts";

// Any fixed number: serialises bootstrap attempts so two cannot both create "the first" admin.
const BOOTSTRAP_LOCK = 7_424_002;

const Bootstrap = z
  .object({ email: EmailField, password: PasswordField, full_name: FullNameField })
  .superRefine(withPasswordPolicy("password", "email"));

/** Checked before the body is read, so a caller without the token learns nothing about the request. */
const requireBootstrapToken = createMiddleware<AppEnv>(async (c, next) => {
  const expected = c.var.config.ADMIN_BOOTSTRAP_TOKEN;
  if (!expected)
    throw new ApiError("FORBIDDEN", "Bootstrap is disabled: set ADMIN_BOOTSTRAP_TOKEN (wrangler secret put).");
  const given = /^Bearer +(\S+) *$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  if (!(await secretsEqual(given, expected))) {
    throw new ApiError("UNAUTHORIZED", "Send Authorization: Bearer <ADMIN_BOOTSTRAP_TOKEN>.", {
      headers: { "WWW-Authenticate": 'Bearer realm="bootstrap"' },
    });
  }
  await next();
});

export const adminBootstrapRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/api/admin/bootstrap",
    tags: ["admin"],
    summary: "Create the first admin (Authorization: Bearer ADMIN_BOOTSTRAP_TOKEN); only while no admin exists",
    security: [{ bootstrapToken: [] }],
    middleware: [requireBootstrapToken] as const,
    request: { body: jsonBody(Bootstrap) },
    responses: {
      201: jsonResponse("The first admin", PublicUser),
      401: problem("Missing or wrong bootstrap token"),
      403: problem("ADMIN_BOOTSTRAP_TOKEN is not set"),
      409: problem("An admin already exists, or the email is taken"),
      422: problem("A field is invalid"),
    },
  }),
  async (c) => {
    const config = c.var.config;
    const { email, password, full_name } = c.req.valid("json");
    const passwordHash = await hashPassword(password);
    const admin = await withPoolDb(config, (db) =>
      db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
        const [existing] = await tx
          .select({ id: users.id })
          .from(users)
          .where(and(eq(users.role, "admin"), isNull(users.deletedAt)))
          .limit(1);
        if (existing)
          throw new ApiError("CONFLICT", "An admin already exists: bootstrap is closed. Sign in as that admin.");
        const [created] = await tx
          .insert(users)
          .values({ email, fullName: full_name, passwordHash, role: "admin" })
          .onConflictDoNothing({ target: users.email })
          .returning();
        if (!created)
          throw new ApiError("CONFLICT", "This email already belongs to an account; use another for the admin.");
        await recordAudit(
          config,
          { action: "admin.bootstrap", actor: { type: "system" }, target: { type: "user", id: created.id } },
          { db: tx },
        );
        return created;
      }),
    );
    return c.json(publicUser(admin), 201);
  },
);
