import { createRoute, z } from "@hono/zod-openapi";
import { and, arrayContains, asc, count, desc, eq, ilike, type SQL } from "drizzle-orm";
import { streamSSE } from "hono/streaming";
import { createDb } from "../adapters/db/client.ts";
import { chunks, documentStatuses, documents, titleSources } from "../adapters/db/schema/kb.ts";
import { recordAudit } from "../audit/record.ts";
import { ApiError, fieldError } from "../errors.ts";
import { findUnsafeJson } from "../input/unsafe.ts";
import { detectFormat } from "../kb/extract/index.ts";
import { recordedIndex } from "../kb/index-spec.ts";
import {
  acceptDocument,
  batchProgress,
  type DocumentRow,
  deleteDocument,
  type ImportRecord,
  importDocuments,
  knowledgeBaseStats,
  rebuildIndex,
  requestReindex,
} from "../kb/library.ts";
import { recordMetrics } from "../metrics/record.ts";
import { principalOf, requireRole } from "../middleware/auth.ts";
import { bodyRules } from "../middleware/body.ts";
import { createRouter, jsonResponse, problem, signedIn } from "./router.ts";

const UPLOAD_OVERHEAD = 64 * 1024; // multipart boundaries and the other fields
bodyRules.set("POST /api/admin/kb/documents", {
  media: ["multipart/form-data"],
  maxBytes: (config) => config.KB_MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD,
});
bodyRules.set("POST /api/admin/kb/import", {
  media: ["application/x-ndjson", "application/jsonl", "application/x-jsonlines", "text/plain", "multipart/form-data"],
  maxBytes: (config) => config.KB_MAX_IMPORT_BYTES,
});

const read = ["admin", "viewer"] as const;
const IdParam = z.object({ id: z.uuid() });

const Document = z
  .object({
    id: z.uuid(),
    external_id: z.string().nullable(),
    source_type: z.string(),
    title: z.string(),
    title_source: z
      .enum(titleSources)
      .describe(
        "given: sent with the upload or import, kept; file_name: the file's name until ingestion finds the document's own title; document: that title",
      ),
    tags: z.array(z.string()),
    metadata: z.record(z.string(), z.unknown()),
    mime_type: z.string(),
    byte_size: z.number().int(),
    sha256: z.string(),
    status: z.enum(documentStatuses),
    stage: z.string().nullable(),
    progress: z.number().int(),
    chunks_done: z.number().int(),
    chunk_count: z.number().int(),
    token_count: z.number().int(),
    error: z.string().nullable(),
    attempts: z.number().int(),
    embedding_model: z.string().nullable(),
    embedding_dimensions: z.number().int().nullable(),
    generation: z.number().int(),
    timings: z.record(z.string(), z.number()),
    batch_id: z.uuid().nullable(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
    indexed_at: z.iso.datetime().nullable(),
    status_url: z.string(),
  })
  .openapi("KbDocument");

const toDocument = (d: DocumentRow): z.infer<typeof Document> => ({
  id: d.id,
  external_id: d.externalId,
  source_type: d.sourceType,
  title: d.title,
  title_source: d.titleSource,
  tags: d.tags,
  metadata: d.metadata as Record<string, unknown>,
  mime_type: d.mimeType,
  byte_size: d.byteSize,
  sha256: d.sha256,
  status: d.status,
  stage: d.stage,
  progress: d.progress,
  chunks_done: d.chunksDone,
  chunk_count: d.chunkCount,
  token_count: d.tokenCount,
  error: d.error,
  attempts: d.attempts,
  embedding_model: d.embeddingModel,
  embedding_dimensions: d.embeddingDimensions,
  generation: d.activeGeneration,
  timings: d.timings as Record<string, number>,
  batch_id: d.batchId,
  created_at: d.createdAt.toISOString(),
  updated_at: d.updatedAt.toISOString(),
  indexed_at: d.indexedAt?.toISOString() ?? null,
  status_url: `/api/admin/kb/documents/${d.id}`,
});

const Tags = z
  .union([z.array(z.string()), z.string()])
  .transform((v) => (Array.isArray(v) ? v : v.split(",")).map((t) => t.trim()).filter(Boolean))
  .pipe(z.array(z.string().max(64)).max(50));
const Metadata = z.record(z.string(), z.unknown());
const SourceType = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, "must be 1-64 of a-z 0-9 _ . - (lower case)");

const UploadFields = z.object({
  title: z.string().trim().min(1).max(500).optional(),
  source_type: SourceType.default("upload"),
  tags: Tags.default([]),
  external_id: z.string().trim().min(1).max(200).optional(),
  metadata: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!v) return {};
      try {
        return Metadata.parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: "custom", message: "must be a JSON object" });
        return z.NEVER;
      }
    }),
});

const ImportLine = z.object({
  external_id: z.string().trim().min(1).max(200),
  title: z.string().trim().min(1).max(500),
  text: z.string().trim().min(1, "must not be empty"),
  source_type: SourceType.optional(),
  tags: Tags.optional(),
  metadata: Metadata.optional(),
});

/**
 * The first field (of a parsed upload or import line) carrying what no stored value may: a NUL, or JSON
 * nested deeper than MAX_JSON_DEPTH. Multipart and JSON Lines bodies are beyond the JSON body guard.
 */
const unsafeField = (fields: object, prefix: string) =>
  Object.entries(fields)
    .map(([name, value]) => findUnsafeJson(value, `${prefix}${name}`))
    .find((problem) => problem !== undefined);

const loadDocument = async (db: ReturnType<typeof createDb>, id: string) => {
  const [document] = await db.select().from(documents).where(eq(documents.id, id));
  if (!document) throw new ApiError("NOT_FOUND", "No knowledge-base document with this id.");
  return document;
};

const auditTarget = (id: string) => ({ type: "kb_document", id });

// Through Hono's request, which caches the form its validator may already have read.
async function readForm(read: () => Promise<FormData>): Promise<FormData> {
  try {
    return await read();
  } catch {
    throw new ApiError(
      "BAD_REQUEST",
      "The multipart body could not be parsed: send multipart/form-data with a file field.",
    );
  }
}

export const kbAdminRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/documents",
      tags: ["knowledge base"],
      summary:
        "Upload a document (multipart: file, title?, source_type?, tags?, external_id?, metadata?) for ingestion",
      security: signedIn,
      middleware: [requireRole("admin")] as const,
      request: {
        body: {
          required: true,
          content: {
            "multipart/form-data": {
              schema: z.object({
                file: z.any().openapi({ type: "string", format: "binary" }),
                title: z.string().optional(),
                source_type: z.string().optional(),
                tags: z.string().optional().describe("comma-separated"),
                external_id: z.string().optional(),
                metadata: z.string().optional().describe("a JSON object"),
              }),
            },
          },
        },
      },
      responses: {
        200: jsonResponse(
          "Same bytes as an existing document: that document, duplicate true",
          Document.extend({ duplicate: z.literal(true) }),
        ),
        202: jsonResponse("Accepted and queued; follow status_url", Document.extend({ duplicate: z.literal(false) })),
        409: problem("external_id already used in this source_type"),
        413: problem("Over KB_MAX_UPLOAD_BYTES"),
        415: problem("Not a supported format (decided from the bytes)"),
        422: problem("A field is invalid, or the file is empty"),
      },
    }),
    async (c) => {
      const config = c.var.config;
      const form = await readForm(() => c.req.formData());
      const file = form.get("file");
      if (!(file instanceof File)) throw fieldError("file", "is required: attach the document as the file field");
      if (file.size > config.KB_MAX_UPLOAD_BYTES) {
        throw new ApiError("PAYLOAD_TOO_LARGE", `The file is over the limit of ${config.KB_MAX_UPLOAD_BYTES} bytes.`, {
          extensions: { limitBytes: config.KB_MAX_UPLOAD_BYTES },
        });
      }
      const fields = UploadFields.safeParse(
        Object.fromEntries([...form.entries()].filter(([k, v]) => k !== "file" && typeof v === "string")),
      );
      if (!fields.success) {
        const errors = fields.error.issues.map((i) => ({ field: `body.${i.path.join(".")}`, message: i.message }));
        throw new ApiError(
          "VALIDATION_FAILED",
          `The upload is invalid: ${errors.map((e) => `${e.field} ${e.message}`).join("; ")}.`,
          {
            errors,
          },
        );
      }
      const unsafe = unsafeField(fields.data, "body.");
      if (unsafe) throw fieldError(unsafe.field, unsafe.message);
      const bytes = new Uint8Array(await file.arrayBuffer());
      if (bytes.byteLength === 0) throw fieldError("file", "is empty");
      const format = detectFormat(bytes, { filename: file.name, contentType: file.type });
      const { document, duplicate } = await acceptDocument(c.env, config, {
        // The file name stands in until ingestion finds the document's own title.
        title: fields.data.title ?? (file.name || "Untitled"),
        titleSource: fields.data.title ? "given" : "file_name",
        sourceType: fields.data.source_type,
        externalId: fields.data.external_id,
        tags: fields.data.tags,
        metadata: fields.data.metadata,
        mimeType: format.mimeType,
        bytes,
        createdBy: principalOf(c).userId,
      });
      if (!duplicate) {
        await recordAudit(config, {
          action: "kb.document.uploaded",
          target: auditTarget(document.id),
          after: {
            title: document.title,
            format: format.format,
            byte_size: document.byteSize,
            sha256: document.sha256,
          },
        });
        await recordMetrics(c.env, c.executionCtx, {
          name: "kb_uploads_total",
          labels: { format: format.format, via: "upload" },
          value: 1,
        });
      }
      const body = { ...toDocument(document), duplicate };
      return duplicate
        ? c.json({ ...body, duplicate: true as const }, 200)
        : c.json({ ...body, duplicate: false as const }, 202, { Location: body.status_url });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/import",
      tags: ["knowledge base"],
      summary: "Bulk import JSON Lines of {external_id, title, text, source_type?, tags?, metadata?}",
      security: signedIn,
      middleware: [requireRole("admin")] as const,
      request: { body: { required: true, content: { "application/x-ndjson": { schema: z.string() } } } },
      responses: {
        202: jsonResponse(
          "Counts and the batch to follow",
          z.object({
            batch_id: z.uuid(),
            received: z.number().int(),
            queued: z.number().int(),
            duplicates: z.number().int(),
            rejected: z.number().int(),
            errors: z.array(z.object({ line: z.number().int(), message: z.string() })),
            status_url: z.string(),
          }),
        ),
        413: problem("Over KB_MAX_IMPORT_BYTES"),
        422: problem("No valid record"),
      },
    }),
    async (c) => {
      const media = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
      let text: string;
      if (media === "multipart/form-data") {
        const file = (await readForm(() => c.req.formData())).get("file");
        if (!(file instanceof File)) throw fieldError("file", "is required: attach the JSONL file as the file field");
        text = await file.text();
      } else {
        text = await c.req.text();
      }
      const records: ImportRecord[] = [];
      const rejected: { line: number; message: string }[] = [];
      text.split(/\r?\n/).forEach((line, i) => {
        if (!line.trim()) return;
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          rejected.push({ line: i + 1, message: "is not valid JSON" });
          return;
        }
        const parsed = ImportLine.safeParse(value);
        if (!parsed.success) {
          rejected.push({
            line: i + 1,
            message: parsed.error.issues.map((e) => `${e.path.join(".")} ${e.message}`).join("; "),
          });
          return;
        }
        const unsafe = unsafeField(parsed.data, "");
        if (unsafe) rejected.push({ line: i + 1, message: `${unsafe.field} ${unsafe.message}` });
        else records.push(parsed.data);
      });
      if (records.length === 0) {
        throw new ApiError(
          "VALIDATION_FAILED",
          "No valid record in the import: each line must be a JSON object with external_id, title and text.",
          {
            errors: rejected.slice(0, 100).map((r) => ({ field: `line ${r.line}`, message: r.message })),
          },
        );
      }
      const summary = await importDocuments(c.env, c.var.config, records, rejected, principalOf(c).userId);
      await recordAudit(c.var.config, {
        action: "kb.import.submitted",
        target: { type: "kb_import", id: summary.batch_id },
        metadata: {
          received: summary.received,
          queued: summary.queued,
          duplicates: summary.duplicates,
          rejected: summary.rejected,
        },
      });
      await recordMetrics(c.env, c.executionCtx, {
        name: "kb_uploads_total",
        labels: { format: "text", via: "import" },
        value: summary.queued,
      });
      return c.json({ ...summary, status_url: `/api/admin/kb/import/${summary.batch_id}` }, 202, {
        Location: `/api/admin/kb/import/${summary.batch_id}`,
      });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/import/{id}",
      tags: ["knowledge base"],
      summary: "Progress of an import batch",
      security: signedIn,
      middleware: [requireRole(...read)] as const,
      request: { params: IdParam },
      responses: {
        200: jsonResponse("Counts by status", z.object({}).catchall(z.unknown())),
        404: problem("No such batch"),
      },
    }),
    async (c) => {
      const progress = await batchProgress(createDb(c.var.config), c.req.valid("param").id);
      if (!progress) throw new ApiError("NOT_FOUND", "No import batch with this id.");
      return c.json(progress, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/documents",
      tags: ["knowledge base"],
      summary: "List documents: filter by status, source_type and tag; search titles",
      security: signedIn,
      middleware: [requireRole(...read)] as const,
      request: {
        query: z.object({
          status: z.enum(documentStatuses).optional(),
          source_type: z.string().optional(),
          tag: z.string().optional(),
          q: z.string().trim().max(200).optional().describe("Search in titles"),
          page: z.coerce.number().int().min(1).default(1),
          page_size: z.coerce.number().int().min(1).max(200).default(50),
        }),
      },
      responses: {
        200: jsonResponse(
          "A page of documents",
          z.object({
            items: z.array(Document),
            total: z.number().int(),
            page: z.number().int(),
            page_size: z.number().int(),
          }),
        ),
      },
    }),
    async (c) => {
      const { status, source_type, tag, q, page, page_size } = c.req.valid("query");
      const filters: SQL[] = [];
      if (status) filters.push(eq(documents.status, status));
      if (source_type) filters.push(eq(documents.sourceType, source_type));
      if (tag) filters.push(arrayContains(documents.tags, [tag]));
      if (q) filters.push(ilike(documents.title, `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`));
      const where = filters.length ? and(...filters) : undefined;
      const db = createDb(c.var.config);
      const [rows, totals] = await Promise.all([
        db
          .select()
          .from(documents)
          .where(where)
          .orderBy(desc(documents.createdAt), desc(documents.id))
          .limit(page_size)
          .offset((page - 1) * page_size),
        db.select({ total: count() }).from(documents).where(where),
      ]);
      return c.json({ items: rows.map(toDocument), total: totals[0]?.total ?? 0, page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/documents/{id}",
      tags: ["knowledge base"],
      summary: "A document: metadata, status, progress, error, counts, embedding model and timings",
      security: signedIn,
      middleware: [requireRole(...read)] as const,
      request: { params: IdParam },
      responses: { 200: jsonResponse("The document", Document), 404: problem("No such document") },
    }),
    async (c) => c.json(toDocument(await loadDocument(createDb(c.var.config), c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/documents/{id}/chunks",
      tags: ["knowledge base"],
      summary: "The indexed chunks of a document (its active generation)",
      security: signedIn,
      middleware: [requireRole(...read)] as const,
      request: {
        params: IdParam,
        query: z.object({
          page: z.coerce.number().int().min(1).default(1),
          page_size: z.coerce.number().int().min(1).max(200).default(50),
        }),
      },
      responses: {
        200: jsonResponse(
          "A page of chunks",
          z.object({
            items: z.array(
              z.object({
                id: z.uuid(),
                index: z.number().int(),
                text: z.string(),
                char_start: z.number().int(),
                char_end: z.number().int(),
                page: z.number().int().nullable(),
                heading_path: z.array(z.string()),
                token_count: z.number().int(),
              }),
            ),
            total: z.number().int(),
            page: z.number().int(),
            page_size: z.number().int(),
          }),
        ),
        404: problem("No such document"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { page, page_size } = c.req.valid("query");
      const db = createDb(c.var.config);
      const document = await loadDocument(db, id);
      const where = and(eq(chunks.documentId, id), eq(chunks.generation, document.activeGeneration));
      const [rows, totals] = await Promise.all([
        db
          .select()
          .from(chunks)
          .where(where)
          .orderBy(asc(chunks.chunkIndex))
          .limit(page_size)
          .offset((page - 1) * page_size),
        db.select({ total: count() }).from(chunks).where(where),
      ]);
      return c.json(
        {
          items: rows.map((r) => ({
            id: r.id,
            index: r.chunkIndex,
            text: r.text,
            char_start: r.charStart,
            char_end: r.charEnd,
            page: r.page,
            heading_path: r.headingPath,
            token_count: r.tokenCount,
          })),
          total: totals[0]?.total ?? 0,
          page,
          page_size,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/documents/{id}/events",
      tags: ["knowledge base"],
      summary: "Server-sent progress events until the document is ready or failed",
      security: signedIn,
      middleware: [requireRole(...read)] as const,
      request: { params: IdParam },
      responses: {
        200: {
          description: "text/event-stream of progress events, then one done event",
          content: { "text/event-stream": { schema: z.string() } },
        },
        404: problem("No such document"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const db = createDb(c.var.config);
      await loadDocument(db, id);
      return streamSSE(c, async (stream) => {
        const deadline = Date.now() + SSE_MAX_MS;
        let last = "";
        let aborted = false;
        stream.onAbort(() => {
          aborted = true;
        });
        while (!aborted && Date.now() < deadline) {
          const [document] = await db.select().from(documents).where(eq(documents.id, id));
          if (!document) {
            await stream.writeSSE({ event: "done", data: JSON.stringify({ id, status: "deleted" }) });
            return;
          }
          const progress = JSON.stringify({
            id,
            status: document.status,
            stage: document.stage,
            progress: document.progress,
            chunks_done: document.chunksDone,
            chunk_count: document.chunkCount,
            error: document.error,
          });
          if (progress !== last) {
            await stream.writeSSE({ event: "progress", data: progress });
            last = progress;
          }
          if (document.status === "ready" || document.status === "failed") {
            await stream.writeSSE({ event: "done", data: JSON.stringify(toDocument(document)) });
            return;
          }
          await stream.sleep(SSE_POLL_MS);
        }
        if (!aborted) await stream.writeSSE({ event: "timeout", data: JSON.stringify({ id, retry_after_ms: 1_000 }) });
      });
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/kb/documents/{id}",
      tags: ["knowledge base"],
      summary: "Delete a document: vectors, chunks, the stored file, and every cache entry that could return it",
      security: signedIn,
      middleware: [requireRole("admin")] as const,
      request: { params: IdParam },
      responses: { 204: { description: "Deleted" }, 404: problem("No such document") },
    }),
    async (c) => {
      const config = c.var.config;
      const document = await loadDocument(createDb(config), c.req.valid("param").id);
      await deleteDocument(c.env, config, document);
      await recordAudit(config, {
        action: "kb.document.deleted",
        target: auditTarget(document.id),
        before: { title: document.title, status: document.status, chunk_count: document.chunkCount },
      });
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/documents/{id}/reindex",
      tags: ["knowledge base"],
      summary: "Rebuild a document's chunks; the old ones are replaced atomically when the new ones are complete",
      security: signedIn,
      middleware: [requireRole("admin")] as const,
      request: { params: IdParam },
      responses: { 202: jsonResponse("Queued", Document), 404: problem("No such document") },
    }),
    async (c) => {
      const config = c.var.config;
      const db = createDb(config);
      const document = await loadDocument(db, c.req.valid("param").id);
      await requestReindex(c.env, config, document);
      await recordAudit(config, { action: "kb.document.reindex_requested", target: auditTarget(document.id) });
      return c.json(toDocument(await loadDocument(db, document.id)), 202);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/documents/{id}/retry",
      tags: ["knowledge base"],
      summary: "Retry a failed document (its message is in the dead-letter queue)",
      security: signedIn,
      middleware: [requireRole("admin")] as const,
      request: { params: IdParam },
      responses: {
        202: jsonResponse("Queued again", Document),
        404: problem("No such document"),
        409: problem("The document has not failed"),
      },
    }),
    async (c) => {
      const config = c.var.config;
      const db = createDb(config);
      const document = await loadDocument(db, c.req.valid("param").id);
      if (document.status !== "failed")
        throw new ApiError("CONFLICT", `Only a failed document can be retried; this one is ${document.status}.`);
      await requestReindex(c.env, config, document);
      await recordAudit(config, {
        action: "kb.document.retried",
        target: auditTarget(document.id),
        metadata: { error: document.error },
      });
      return c.json(toDocument(await loadDocument(db, document.id)), 202);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/index/rebuild",
      tags: ["knowledge base"],
      summary: "Rebuild the vector index with the configured embedding model (re-embeds every document)",
      security: signedIn,
      middleware: [requireRole("admin")] as const,
      responses: {
        202: jsonResponse(
          "Every document queued for its next generation",
          z.object({ model: z.string(), dimensions: z.number().int(), queued: z.number().int() }),
        ),
      },
    }),
    async (c) => {
      const config = c.var.config;
      const before = await recordedIndex(createDb(config));
      const rebuilt = await rebuildIndex(c.env, config);
      await recordAudit(config, {
        action: "kb.index.rebuilt",
        target: { type: "kb_index", id: "default" },
        before: before ? { model: before.model, dimensions: before.dimensions } : null,
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
      middleware: [requireRole(...read)] as const,
      responses: { 200: jsonResponse("Statistics", z.object({}).catchall(z.unknown())) },
    }),
    async (c) => c.json(await knowledgeBaseStats(createDb(c.var.config)), 200),
  );

const SSE_POLL_MS = 500;
const SSE_MAX_MS = 10 * 60_000;
