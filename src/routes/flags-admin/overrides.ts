// Per-user overrides of a flag, and the cleanup of expired ones.
import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../../db/client.ts";
import { listOverrides, removeExpiredOverrides, removeOverride, setOverrides } from "../../flags/admin.ts";
import { BulkOverrideInput, identifier, OverrideInput } from "../../flags/schema.ts";
import { requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "../router.ts";
import { actor, KeyParam, published, tags } from "./shared.ts";

const UserParam = KeyParam.extend({ userId: identifier().max(200).describe("The user id (URL-encoded)") });
const Overrides = z.array(z.record(z.string(), z.unknown()));

export const overrideRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/overrides/cleanup",
      tags,
      summary: "Delete every expired override",
      security: signedIn,
      middleware: [requireAdmin] as const,
      responses: { 200: jsonResponse("How many were removed", z.object({ removed: z.number().int() })) },
    }),
    async (c) => c.json(await published(c, await removeExpiredOverrides(c.var.config, actor(c))), 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/{key}/overrides",
      tags,
      summary: "List a flag's per-user overrides",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { params: KeyParam },
      responses: { 200: jsonResponse("Overrides", z.object({ items: Overrides })), 404: problem("No such flag") },
    }),
    async (c) => c.json({ items: await listOverrides(createDb(c.var.config), c.req.valid("param").key) }, 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/{key}/overrides",
      tags,
      summary: "Set the same override for many users at once",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: KeyParam, body: jsonBody(BulkOverrideInput) },
      responses: {
        200: jsonResponse("The overrides set", z.object({ items: Overrides })),
        404: problem("No such flag"),
      },
    }),
    async (c) => {
      const { userIds, ...input } = c.req.valid("json");
      const items = await published(
        c,
        await setOverrides(c.var.config, actor(c), c.req.valid("param").key, userIds, input),
      );
      return c.json({ items }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/api/admin/flags/{key}/overrides/{userId}",
      tags,
      summary: "Set one user's override (wins over every rule while active)",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: UserParam, body: jsonBody(OverrideInput) },
      responses: { 200: jsonResponse("The override", z.record(z.string(), z.unknown())), 404: problem("No such flag") },
    }),
    async (c) => {
      const { key, userId } = c.req.valid("param");
      const [item] = await published(c, await setOverrides(c.var.config, actor(c), key, [userId], c.req.valid("json")));
      return c.json(item ?? {}, 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/flags/{key}/overrides/{userId}",
      tags,
      summary: "Remove one user's override",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: UserParam },
      responses: { 204: { description: "Removed" }, 404: problem("No such override") },
    }),
    async (c) => {
      const { key, userId } = c.req.valid("param");
      await published(c, await removeOverride(c.var.config, actor(c), key, userId));
      return c.body(null, 204);
    },
  );
