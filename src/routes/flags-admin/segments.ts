// Segments: reusable constraint sets that strategies refer to by id.
import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../../db/client.ts";
import { deleteSegment, saveSegment } from "../../flags/admin.ts";
import { SegmentInput } from "../../flags/schema.ts";
import { listSegments } from "../../flags/store.ts";
import { requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "../router.ts";
import { actor, published, tags } from "./shared.ts";

const SegmentParam = z.object({ id: z.coerce.number().int().positive() });
const Segment = z.object({
  id: z.number().int(),
  name: z.string().optional(),
  description: z.string().nullish(),
  constraints: z.array(z.unknown()),
  version: z.number().int().optional(),
});

export const segmentRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/segments",
      tags,
      summary: "List segments (reusable constraint sets)",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      responses: { 200: jsonResponse("Segments", z.object({ items: z.array(Segment) })) },
    }),
    async (c) => c.json({ items: await listSegments(createDb(c.var.config)) }, 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/segments",
      tags,
      summary: "Create a segment",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { body: jsonBody(SegmentInput) },
      responses: { 201: jsonResponse("The segment", Segment), 422: problem("A constraint is invalid") },
    }),
    async (c) =>
      c.json(await published(c, await saveSegment(c.var.config, actor(c), undefined, c.req.valid("json"))), 201),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/api/admin/flags/segments/{id}",
      tags,
      summary: "Replace a segment's name and constraints",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: SegmentParam, body: jsonBody(SegmentInput) },
      responses: { 200: jsonResponse("The segment", Segment), 404: problem("No such segment") },
    }),
    async (c) =>
      c.json(
        await published(c, await saveSegment(c.var.config, actor(c), c.req.valid("param").id, c.req.valid("json"))),
        200,
      ),
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/flags/segments/{id}",
      tags,
      summary: "Delete a segment no strategy uses",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: SegmentParam },
      responses: { 204: { description: "Deleted" }, 404: problem("No such segment"), 409: problem("In use") },
    }),
    async (c) => {
      await published(c, await deleteSegment(c.var.config, actor(c), c.req.valid("param").id));
      return c.body(null, 204);
    },
  );
