import { z } from "@hono/zod-openapi";
import { ApiError } from "../../errors.ts";
import { findUnsafeJson } from "../../input/unsafe.ts";
import { type DocumentRow, documentStatuses, titleSources } from "../../kb/catalogue.ts";

// What the documents, import and index routes of the knowledge-base admin have in common.

export const IdParam = z.object({ id: z.uuid() });

export const Document = z
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

export const toDocument = (d: DocumentRow): z.infer<typeof Document> => ({
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

export const Tags = z
  .union([z.array(z.string()), z.string()])
  .transform((v) => (Array.isArray(v) ? v : v.split(",")).map((t) => t.trim()).filter(Boolean))
  .pipe(z.array(z.string().max(64)).max(50));
export const Metadata = z.record(z.string(), z.unknown());
export const SourceType = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, "must be 1-64 of a-z 0-9 _ . - (lower case)");

/**
 * The first field (of a parsed upload or import line) carrying what no stored value may: a NUL, or JSON
 * nested deeper than MAX_JSON_DEPTH. Multipart and JSON Lines bodies are beyond the JSON body guard.
 */
export const unsafeField = (fields: object, prefix: string) =>
  Object.entries(fields)
    .map(([name, value]) => findUnsafeJson(value, `${prefix}${name}`))
    .find((problem) => problem !== undefined);

export const auditTarget = (id: string) => ({ type: "kb_document", id });

// Through Hono's request, which caches the form its validator may already have read.
export async function readForm(read: () => Promise<FormData>): Promise<FormData> {
  try {
    return await read();
  } catch {
    throw new ApiError(
      "BAD_REQUEST",
      "The multipart body could not be parsed: send multipart/form-data with a file field.",
    );
  }
}
