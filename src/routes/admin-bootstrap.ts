import { createRoute, z } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
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
import { createFirstAdmin } from "../auth/users-store.ts";
import { ApiError } from "../errors.ts";
import { createRouter, jsonBody, jsonResponse, problem } from "./router.ts";

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
    const admin = await createFirstAdmin(config, { email, fullName: full_name, passwordHash });
    return c.json(publicUser(admin), 201);
  },
);
