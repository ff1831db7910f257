import { createRoute, z } from "@hono/zod-openapi";
import { recordAudit } from "../../audit/record.ts";
import { ApiError, fieldError } from "../../errors.ts";
import { batchProgress, type ImportRecord, importDocuments } from "../../kb/import.ts";
import { recordMetrics } from "../../metrics/record.ts";
import { principalOf, requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { acceptsBody } from "../../middleware/body.ts";
import { createRouter, jsonResponse, problem, signedIn } from "../router.ts";
import { IdParam, Metadata, readForm, SourceType, Tags, unsafeField } from "./shared.ts";

// Bulk import of JSON Lines records into the knowledge base, and each import batch's progress.

const jsonLines = acceptsBody({
  media: ["application/x-ndjson", "application/jsonl", "application/x-jsonlines", "text/plain", "multipart/form-data"],
  maxBytes: (config) => config.KB_MAX_IMPORT_BYTES,
});

const ImportLine = z.object({
  external_id: z.string().trim().min(1).max(200),
  title: z.string().trim().min(1).max(500),
  text: z.string().trim().min(1, "must not be empty"),
  source_type: SourceType.optional(),
  tags: Tags.optional(),
  metadata: Metadata.optional(),
});

export const importRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/kb/import",
      tags: ["knowledge base"],
      summary: "Bulk import JSON Lines of {external_id, title, text, source_type?, tags?, metadata?}",
      security: signedIn,
      middleware: [jsonLines, requireAdmin] as const,
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
      middleware: [requireAdminOrViewer] as const,
      request: { params: IdParam },
      responses: {
        200: jsonResponse("Counts by status", z.object({}).catchall(z.unknown())),
        404: problem("No such batch"),
      },
    }),
    async (c) => {
      const progress = await batchProgress(c.var.config, c.req.valid("param").id);
      if (!progress) throw new ApiError("NOT_FOUND", "No import batch with this id.");
      return c.json(progress, 200);
    },
  );
