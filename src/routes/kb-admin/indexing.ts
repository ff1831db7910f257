import { createRoute, z } from "@hono/zod-openapi";
import { recordAudit } from "../../audit/record.ts";
import { getDocument, knowledgeBaseStats, rebuildIndex, requestReindex } from "../../kb/catalogue.ts";
import { requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonResponse, problem, signedIn } from "../router.ts";
import { auditTarget, Document, IdParam, toDocument } from "./shared.ts";

// The search index: rebuild one document's chunks, rebuild every vector, and what the index holds.

export const indexRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/documents/{id}/reindex",
      tags: ["knowledge base"],
      summary: "Rebuild a document's chunks; the old ones are replaced atomically when the new ones are complete",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam },
      responses: { 202: jsonResponse("Queued", Document), 404: problem("No such document") },
    }),
    async (c) => {
      const config = c.var.config;
      const document = await getDocument(config, c.req.valid("param").id);
      await requestReindex(c.env, config, document);
      await recordAudit(config, { action: "kb.document.reindex_requested", target: auditTarget(document.id) });
      return c.json(toDocument(await getDocument(config, document.id)), 202);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/index/rebuild",
      tags: ["knowledge base"],
      summary: "Rebuild the vector index with the configured embedding model (re-embeds every document)",
      security: signedIn,
      middleware: [requireAdmin] as const,
      responses: {
        202: jsonResponse(
          "Every document queued for its next generation",
          z.object({ model: z.string(), dimensions: z.number().int(), queued: z.number().int() }),
        ),
      },
    }),
    async (c) => {
      const config = c.var.config;
      const { previous, ...rebuilt } = await rebuildIndex(c.env, config);
      await recordAudit(config, {
        action: "kb.index.rebuilt",
        target: { type: "kb_index", id: "default" },
        before: previous ? { model: previous.model, dimensions: previous.dimensions } : null,
        after: { model: rebuilt.model, dimensions: rebuilt.dimensions },
        metadata: { queued: rebuilt.queued },
      });
      return c.json(rebuilt, 202);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/stats",
      tags: ["knowledge base"],
      summary: "Documents by status and type, chunks, storage used, last ingestion",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      responses: { 200: jsonResponse("Statistics", z.object({}).catchall(z.unknown())) },
    }),
    async (c) => c.json(await knowledgeBaseStats(c.var.config), 200),
  );
