import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { recordAudit } from "../../audit/record.ts";
import { ApiError, fieldError } from "../../errors.ts";
import {
  acceptDocument,
  deleteDocument,
  documentChunks,
  documentStatuses,
  findDocument,
  getDocument,
  listDocuments,
  requestReindex,
} from "../../kb/catalogue.ts";
import { detectFormat } from "../../kb/extract/index.ts";
import { recordMetrics } from "../../metrics/record.ts";
import { principalOf, requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { acceptsBody } from "../../middleware/body.ts";
import { createRouter, jsonResponse, PageQuery, pageOf, problem, signedIn } from "../router.ts";
import {
  auditTarget,
  Document,
  IdParam,
  Metadata,
  readForm,
  SourceType,
  Tags,
  toDocument,
  unsafeField,
} from "./shared.ts";

// Knowledge-base documents: upload, list, read (with chunks and live progress), retry and delete.

const UPLOAD_OVERHEAD = 64 * 1024; // multipart boundaries and the other fields
const documentUpload = acceptsBody({
  media: ["multipart/form-data"],
  maxBytes: (config) => config.KB_MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD,
});

const SSE_POLL_MS = 500;
const SSE_MAX_MS = 10 * 60_000;

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

export const documentRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/documents",
      tags: ["knowledge base"],
      summary:
        "Upload a document (multipart: file, title?, source_type?, tags?, external_id?, metadata?) for ingestion",
      security: signedIn,
      middleware: [documentUpload, requireAdmin] as const,
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
      method: "get",
      path: "/api/admin/kb/documents",
      tags: ["knowledge base"],
      summary: "List documents: filter by status, source_type and tag; search titles",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: {
        query: z
          .object({
            status: z.enum(documentStatuses).optional(),
            source_type: z.string().optional(),
            tag: z.string().optional(),
            q: z.string().trim().max(200).optional().describe("Search in titles"),
          })
          .extend(PageQuery.shape),
      },
      responses: {
        200: jsonResponse("A page of documents", pageOf(Document)),
      },
    }),
    async (c) => {
      const { status, source_type, tag, q, page, page_size } = c.req.valid("query");
      const { rows, total } = await listDocuments(
        c.var.config,
        { status, sourceType: source_type, tag, titleContains: q },
        { page, pageSize: page_size },
      );
      return c.json({ items: rows.map(toDocument), total, page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/documents/{id}",
      tags: ["knowledge base"],
      summary: "A document: metadata, status, progress, error, counts, embedding model and timings",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { params: IdParam },
      responses: { 200: jsonResponse("The document", Document), 404: problem("No such document") },
    }),
    async (c) => c.json(toDocument(await getDocument(c.var.config, c.req.valid("param").id)), 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/kb/documents/{id}/chunks",
      tags: ["knowledge base"],
      summary: "The indexed chunks of a document (its active generation)",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: {
        params: IdParam,
        query: PageQuery,
      },
      responses: {
        200: jsonResponse(
          "A page of chunks",
          pageOf(
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
        ),
        404: problem("No such document"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { page, page_size } = c.req.valid("query");
      const document = await getDocument(c.var.config, id);
      const { rows, total } = await documentChunks(c.var.config, document, { page, pageSize: page_size });
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
          total,
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
      middleware: [requireAdminOrViewer] as const,
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
      await getDocument(c.var.config, id);
      return streamSSE(c, async (stream) => {
        const deadline = Date.now() + SSE_MAX_MS;
        let last = "";
        let aborted = false;
        stream.onAbort(() => {
          aborted = true;
        });
        while (!aborted && Date.now() < deadline) {
          const document = await findDocument(c.var.config, id);
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
      middleware: [requireAdmin] as const,
      request: { params: IdParam },
      responses: { 204: { description: "Deleted" }, 404: problem("No such document") },
    }),
    async (c) => {
      const config = c.var.config;
      const document = await getDocument(config, c.req.valid("param").id);
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
      path: "/api/admin/kb/documents/{id}/retry",
      tags: ["knowledge base"],
      summary: "Retry a failed document (its message is in the dead-letter queue)",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam },
      responses: {
        202: jsonResponse("Queued again", Document),
        404: problem("No such document"),
        409: problem("The document has not failed"),
      },
    }),
    async (c) => {
      const config = c.var.config;
      const document = await getDocument(config, c.req.valid("param").id);
      if (document.status !== "failed")
        throw new ApiError("CONFLICT", `Only a failed document can be retried; this one is ${document.status}.`);
      await requestReindex(c.env, config, document);
      await recordAudit(config, {
        action: "kb.document.retried",
        target: auditTarget(document.id),
        metadata: { error: document.error },
      });
      return c.json(toDocument(await getDocument(config, document.id)), 202);
    },
  );
