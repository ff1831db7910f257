import { createRoute, z } from "@hono/zod-openapi";
import { PublicUser, publicUser, RoleField } from "../auth/accounts.ts";
import { randomToken } from "../auth/crypto.ts";
import { issuePasswordReset } from "../auth/password-resets.ts";
import { sessionEndEvents } from "../auth/session-ends.ts";
import {
  auditedChange,
  changeRole,
  eraseUser,
  listUsers,
  loadUser,
  setActive,
  softDeleteUser,
} from "../auth/user-admin.ts";
import { createDb, type Database } from "../db/client.ts";
import { ApiError } from "../errors.ts";
import { forgetFlagCallersOf } from "../flags/request.ts";
import { recordMetrics } from "../metrics/record.ts";
import { principalOf, requireAdmin, requireAdminOrViewer } from "../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, PageQuery, pageOf, problem, signedIn } from "./router.ts";

const IdParam = z.object({ id: z.uuid() });

const ListQuery = z
  .object({
    q: z.string().trim().max(200).optional().describe("Search in email and full name"),
    role: RoleField.optional(),
    status: z.enum(["active", "inactive", "deleted"]).optional(),
  })
  .extend(PageQuery.shape);

export const adminUserRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/users",
      tags: ["admin"],
      summary: "List and search users",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { query: ListQuery },
      responses: { 200: jsonResponse("A page of users", pageOf(PublicUser)), 403: problem("Not an admin or viewer") },
    }),
    async (c) => {
      const { q, role, status, page, page_size } = c.req.valid("query");
      const { rows, total } = await listUsers(createDb(c.var.config), { q, role, status, page, pageSize: page_size });
      return c.json({ items: rows.map(publicUser), total, page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/users/{id}",
      tags: ["admin"],
      summary: "Get a user",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { params: IdParam },
      responses: {
        200: jsonResponse("The user", PublicUser),
        403: problem("Not an admin or viewer"),
        404: problem("No such user"),
      },
    }),
    async (c) => c.json(publicUser(await loadUser(createDb(c.var.config), c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/api/admin/users/{id}/role",
      tags: ["admin"],
      summary: "Change a user's role (takes effect on their next request)",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam, body: jsonBody(z.object({ role: RoleField })) },
      responses: {
        200: jsonResponse("The updated user", PublicUser),
        403: problem("Not an admin"),
        404: problem("No such user"),
        409: problem("The last active admin cannot be demoted, or the user is deleted"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { role } = c.req.valid("json");
      const updated = await auditedChange(c.var.config, async (tx: Database) => {
        const { before, after } = await changeRole(tx, id, role);
        return {
          result: after,
          audit: {
            action: "admin.user.role_changed",
            target: { type: "user", id },
            before: { role: before.role },
            after: { role: after.role },
          },
        };
      });
      forgetFlagCallersOf({ userId: id });
      return c.json(publicUser(updated), 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/users/{id}/password-reset",
      tags: ["admin"],
      summary: "Issue a one-time password reset token for the user (shown once)",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam },
      responses: {
        201: jsonResponse(
          "Give the token to the user; they redeem it at POST /api/auth/password-reset",
          z.object({ reset_token: z.string(), expires_at: z.iso.datetime() }),
        ),
        403: problem("Not an admin"),
        404: problem("No such user"),
        409: problem("The user is deleted"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const config = c.var.config;
      const token = randomToken();
      const expiresAt = new Date(Date.now() + config.PASSWORD_RESET_TTL_MINUTES * 60_000);
      await auditedChange(config, async (tx: Database) => {
        await issuePasswordReset(tx, { userId: id, token, createdBy: principalOf(c).userId, expiresAt });
        return {
          result: undefined,
          audit: {
            action: "admin.user.password_reset_issued",
            target: { type: "user", id },
            metadata: { expires_at: expiresAt.toISOString() },
          },
        };
      });
      return c.json({ reset_token: token, expires_at: expiresAt.toISOString() }, 201);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/users/{id}/{action}",
      tags: ["admin"],
      summary: "Activate or deactivate a user (deactivation ends every session at once)",
      // Registered after /password-reset, which this pattern would otherwise shadow.
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam.extend({ action: z.enum(["activate", "deactivate"]) }) },
      responses: {
        200: jsonResponse("The updated user", PublicUser),
        403: problem("Not an admin"),
        404: problem("No such user"),
        409: problem("The last active admin cannot be deactivated, or the user is deleted"),
      },
    }),
    async (c) => {
      const { id, action } = c.req.valid("param");
      const active = action === "activate";
      const { after: updated, ended } = await auditedChange(c.var.config, async (tx: Database) => {
        const { before, after, ended } = await setActive(tx, id, active);
        return {
          result: { after, ended },
          audit: {
            action: active ? "admin.user.activated" : "admin.user.deactivated",
            target: { type: "user", id },
            before: { is_active: before.isActive },
            after: { is_active: after.isActive },
            metadata: { sessions_ended: ended.length },
          },
        };
      });
      // Only once the transaction has committed: a rolled-back deactivation ended nothing.
      await recordMetrics(c.env, c.executionCtx, ...sessionEndEvents(ended));
      forgetFlagCallersOf({ userId: id });
      return c.json(publicUser(updated), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/users/{id}",
      tags: ["admin"],
      summary: "Delete a user: soft first; with permanent=true a soft-deleted user is erased",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam, query: z.object({ permanent: z.enum(["true", "false"]).default("false") }) },
      responses: {
        200: jsonResponse("Soft-deleted (the user, now marked deleted)", PublicUser),
        204: { description: "Permanently deleted" },
        403: problem("Not an admin"),
        404: problem("No such user"),
        409: problem("Permanent deletion needs a soft delete first; the last active admin cannot be deleted"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const permanent = c.req.valid("query").permanent === "true";
      if (principalOf(c).userId === id) throw new ApiError("CONFLICT", "You cannot delete your own account here.");
      const result = await auditedChange(c.var.config, async (tx: Database) => {
        if (permanent) {
          await eraseUser(tx, id);
          return {
            result: undefined,
            audit: { action: "admin.user.deleted", target: { type: "user", id }, metadata: { permanent: true } },
          };
        }
        const deleted = await softDeleteUser(tx, id);
        return {
          result: deleted,
          audit: { action: "admin.user.deleted", target: { type: "user", id }, metadata: { permanent: false } },
        };
      });
      if (result) await recordMetrics(c.env, c.executionCtx, ...sessionEndEvents(result.ended));
      forgetFlagCallersOf({ userId: id });
      return result ? c.json(publicUser(result.after), 200) : c.body(null, 204);
    },
  );
