import { z } from "@hono/zod-openapi";
import { roles, type users } from "../db/schema/identity.ts";
import { displayName } from "../input/names.ts";
import { passwordProblem } from "./password-policy.ts";

/** Emails are compared trimmed and lowercased everywhere: this field normalises them on the way in. */
export const EmailField = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.email({ error: "must be a valid email address" }).max(254, "must be at most 254 characters"));

export const FullNameField = displayName(200);

export const PasswordField = z.string({ error: "is required" }).max(1024, "is too long");

/** Adds the password policy's verdict, reported on the named field. */
export const withPasswordPolicy =
  <T extends Record<string, unknown>>(field: keyof T & string, emailField?: keyof T & string) =>
  (value: T, ctx: z.RefinementCtx) => {
    const problem = passwordProblem(
      String(value[field] ?? ""),
      emailField ? String(value[emailField] ?? "") : undefined,
    );
    if (problem) ctx.addIssue({ code: "custom", path: [field], message: problem });
  };

export const RoleField = z.enum(roles);

export const PublicUser = z
  .object({
    id: z.uuid(),
    email: z.string(),
    full_name: z.string(),
    role: RoleField,
    is_active: z.boolean(),
    created_at: z.iso.datetime(),
    last_login_at: z.iso.datetime().nullable(),
    deleted_at: z.iso.datetime().nullable(),
  })
  .openapi("User");

/** What the API shows of a user: never a password field. */
export const publicUser = (u: typeof users.$inferSelect): z.infer<typeof PublicUser> => ({
  id: u.id,
  email: u.email,
  full_name: u.fullName,
  role: u.role,
  is_active: u.isActive,
  created_at: u.createdAt.toISOString(),
  last_login_at: u.lastLoginAt?.toISOString() ?? null,
  deleted_at: u.deletedAt?.toISOString() ?? null,
});
