import { and, count, eq, inArray, sql, sum } from "drizzle-orm";
import { createDb, type Database, queryRows } from "../adapters/db/client.ts";
import {
  chunks,
  type DocumentStatus,
  documents,
  embeddingIndexes,
  importBatches,
  type TitleSource,
} from "../adapters/db/schema/kb.ts";
import { sha256Hex } from "../auth/crypto.ts";
import type { Config } from "../config.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { log } from "../observability/log.ts";
import { envelope } from "../observability/outbound.ts";
import { bumpKbVersion } from "./cache-version.ts";
import { createEmbedder } from "./embed/index.ts";
import { DEFAULT_INDEX, recordedIndex } from "./index-spec.ts";
import { INGEST_MESSAGE, queueIngestion } from "./ingest.ts";
import { createVectorStore } from "./vectors/index.ts";

export type DocumentRow = typeof documents.$inferSelect;

export interface NewDocument {
  title: string;
  /** "file_name": ingestion replaces the title with the document's own when it has one. */
  titleSource: TitleSource;
  sourceType: string;
  externalId?: string | undefined;
  tags: string[];
  metadata: Record<string, unknown>;
  mimeType: string;
  bytes: Uint8Array;
  batchId?: string;
  createdBy?: string;
}

/**
 * Stores one document for ingestion: the row (status queued), the raw bytes in R2, then the queue
 * message. Same bytes as an existing document → that document, flagged duplicate. A failure part-way
 * undoes what was stored, so no half-accepted document remains.
 */
export async function acceptDocument(
  env: Env,
  config: Config,
  input: NewDocument,
): Promise<{ document: DocumentRow; duplicate: boolean }> {
  const db = createDb(config);
  const digest = await sha256Hex(input.bytes);
  const [existing] = await db.select().from(documents).where(eq(documents.sha256, digest)).limit(1);
  if (existing) return { document: existing, duplicate: true };
  if (input.externalId) {
    const [taken] = await db
      .select({ id: documents.id })
      .from(documents)
      .where(and(eq(documents.sourceType, input.sourceType), eq(documents.externalId, input.externalId)))
      .limit(1);
    if (taken) {
      throw new ApiError(
        "CONFLICT",
        `external_id "${input.externalId}" is already used in source_type "${input.sourceType}" by document ${taken.id}; delete it first or reindex it.`,
        { extensions: { document_id: taken.id } },
      );
    }
  }
  const id = crypto.randomUUID();
  const r2Key = `documents/${id}`;
  const [document] = await db
    .insert(documents)
    .values({
      id,
      title: input.title,
      titleSource: input.titleSource,
      sourceType: input.sourceType,
      externalId: input.externalId ?? null,
      tags: input.tags,
      metadata: input.metadata,
      mimeType: input.mimeType,
      byteSize: input.bytes.byteLength,
      sha256: digest,
      r2Key,
      batchId: input.batchId ?? null,
      createdBy: input.createdBy ?? null,
    })
    .onConflictDoNothing()
    .returning();
  if (!document) {
    // Lost a race with an identical upload: answer with the winner.
    const [winner] = await db.select().from(documents).where(eq(documents.sha256, digest)).limit(1);
    if (winner) return { document: winner, duplicate: true };
    throw new ApiError("CONFLICT", "A document with this external_id was created at the same time; retry.");
  }
  try {
    await env.DOCUMENTS.put(r2Key, input.bytes, {
      httpMetadata: { contentType: input.mimeType },
      customMetadata: { sha256: digest, documentId: id },
    });
    await queueIngestion(env, { documentId: id, generation: 1 });
  } catch (error) {
    await env.DOCUMENTS.delete(r2Key).catch(() => {});
    await db.delete(documents).where(eq(documents.id, id));
    throw new ApiError("UPSTREAM_UNAVAILABLE", "The document could not be stored or queued; nothing was kept. Retry.", {
      cause: error,
    });
  }
  return { document, duplicate: false };
}

export interface ImportRecord {
  external_id: string;
  title: string;
  text: string;
  source_type?: string | undefined;
  tags?: string[] | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface ImportSummary {
  batch_id: string;
  received: number;
  queued: number;
  duplicates: number;
  rejected: number;
  errors: { line: number; message: string }[];
}

const QUEUE_SEND_BATCH = 100;
const IMPORT_SOURCE = "import";

/**
 * Bulk import: each valid record becomes a text document (R2 + row), queued in batches of 100 messages.
 * Records whose text is already stored are counted as duplicates; invalid lines were rejected by the caller.
 */
export async function importDocuments(
  env: Env,
  config: Config,
  records: ImportRecord[],
  rejected: { line: number; message: string }[],
  createdBy: string,
): Promise<ImportSummary> {
  const db = createDb(config);
  const batchId = crypto.randomUUID();
  const encoder = new TextEncoder();
  const prepared = await Promise.all(
    records.map(async (r) => {
      const bytes = encoder.encode(r.text);
      return { record: r, bytes, digest: await sha256Hex(bytes), id: crypto.randomUUID() };
    }),
  );
  const known = new Set<string>();
  for (let i = 0; i < prepared.length; i += 500) {
    const digests = prepared.slice(i, i + 500).map((p) => p.digest);
    const rows = await db
      .select({ sha256: documents.sha256 })
      .from(documents)
      .where(inArray(documents.sha256, digests));
    for (const row of rows) known.add(row.sha256);
  }
  const fresh = prepared.filter((p) => {
    if (known.has(p.digest)) return false;
    known.add(p.digest); // the same text twice in one import is one document
    return true;
  });
  const inserted: typeof fresh = [];
  for (let i = 0; i < fresh.length; i += 500) {
    const slice = fresh.slice(i, i + 500);
    const rows = await db
      .insert(documents)
      .values(
        slice.map((p) => ({
          id: p.id,
          title: p.record.title,
          sourceType: p.record.source_type ?? IMPORT_SOURCE,
          externalId: p.record.external_id,
          tags: p.record.tags ?? [],
          metadata: p.record.metadata ?? {},
          mimeType: "text/plain; charset=utf-8",
          byteSize: p.bytes.byteLength,
          sha256: p.digest,
          r2Key: `documents/${p.id}`,
          batchId,
          createdBy,
        })),
      )
      .onConflictDoNothing()
      .returning({ id: documents.id });
    const ids = new Set(rows.map((r) => r.id));
    inserted.push(...slice.filter((p) => ids.has(p.id)));
  }
  for (const p of inserted) {
    await env.DOCUMENTS.put(`documents/${p.id}`, p.bytes, {
      httpMetadata: { contentType: "text/plain; charset=utf-8" },
    });
  }
  for (let i = 0; i < inserted.length; i += QUEUE_SEND_BATCH) {
    const messages = inserted.slice(i, i + QUEUE_SEND_BATCH).map((p) => ({
      body: envelope(INGEST_MESSAGE, { documentId: p.id, generation: 1 }),
      contentType: "json" as const,
    }));
    await env.KB_INGEST.sendBatch(messages);
  }
  const summary = {
    received: records.length + rejected.length,
    queued: inserted.length,
    duplicates: records.length - inserted.length,
    rejected: rejected.length,
  };
  await db.insert(importBatches).values({ id: batchId, createdBy, ...summary, errors: rejected.slice(0, 100) });
  log("info", "kb import accepted", { batch_id: batchId, ...summary });
  return { batch_id: batchId, ...summary, errors: rejected.slice(0, 100) };
}

/** Counts of an import batch's documents by status. */
export async function batchProgress(db: Database, batchId: string) {
  const [batch] = await db.select().from(importBatches).where(eq(importBatches.id, batchId));
  if (!batch) return undefined;
  const rows = await db
    .select({ status: documents.status, n: count() })
    .from(documents)
    .where(eq(documents.batchId, batchId))
    .groupBy(documents.status);
  const byStatus: Record<DocumentStatus, number> = { queued: 0, processing: 0, ready: 0, failed: 0 };
  for (const r of rows) byStatus[r.status] = r.n;
  const finished = byStatus.ready + byStatus.failed;
  return {
    batch_id: batch.id,
    created_at: batch.createdAt.toISOString(),
    received: batch.received,
    queued: batch.queued,
    duplicates: batch.duplicates,
    rejected: batch.rejected,
    errors: batch.errors as { line: number; message: string }[],
    status: byStatus,
    done: finished >= batch.queued,
    percent: batch.queued ? Math.round((100 * finished) / batch.queued) : 100,
  };
}

/**
 * Removes a document everywhere: vectors, chunks and postings (cascade), the row, the R2 object, and
 * bumps the knowledge-base version so no cache can serve it again. An ingestion still running for it
 * finds the document gone and discards its work.
 */
export async function deleteDocument(env: Env, config: Config, document: DocumentRow): Promise<void> {
  const db = createDb(config);
  const index = await recordedIndex(db);
  if (index) await createVectorStore(config).deleteDocument(index, document.id);
  await db.delete(documents).where(eq(documents.id, document.id));
  await bumpKbVersion(db);
  await env.DOCUMENTS.delete(document.r2Key);
}

/** Queues a rebuild into the next generation; the current chunks stay visible until it completes. */
export async function requestReindex(env: Env, config: Config, document: DocumentRow): Promise<void> {
  await createDb(config)
    .update(documents)
    .set({ status: "queued", stage: null, progress: 0, chunksDone: 0, error: null, attempts: 0, updatedAt: new Date() })
    .where(eq(documents.id, document.id));
  await queueIngestion(env, { documentId: document.id, generation: document.activeGeneration + 1 });
}

/**
 * Switches the vector index to the configured embedder: records its model and dimension, drops every
 * old vector (so the index is never mixed) and queues every document's next generation. Until a
 * document is re-embedded it is found by keyword search only.
 */
export async function rebuildIndex(
  env: Env,
  config: Config,
): Promise<{ model: string; dimensions: number; queued: number }> {
  const db = createDb(config);
  const embedder = createEmbedder(config);
  const previous = await recordedIndex(db);
  if (previous) await createVectorStore(config).dropIndex(previous);
  await db
    .insert(embeddingIndexes)
    .values({ name: DEFAULT_INDEX, model: embedder.model, dimensions: embedder.dimensions })
    .onConflictDoUpdate({
      target: embeddingIndexes.name,
      set: { model: embedder.model, dimensions: embedder.dimensions, createdAt: new Date() },
    });
  const all = await db
    .update(documents)
    .set({ status: "queued", stage: null, progress: 0, chunksDone: 0, error: null, attempts: 0, updatedAt: new Date() })
    .returning({ id: documents.id, generation: documents.activeGeneration });
  await bumpKbVersion(db);
  for (let i = 0; i < all.length; i += QUEUE_SEND_BATCH) {
    await env.KB_INGEST.sendBatch(
      all.slice(i, i + QUEUE_SEND_BATCH).map((d) => ({
        body: envelope(INGEST_MESSAGE, { documentId: d.id, generation: d.generation + 1 }),
        contentType: "json" as const,
      })),
    );
  }
  return { model: embedder.model, dimensions: embedder.dimensions, queued: all.length };
}

export async function knowledgeBaseStats(db: Database) {
  const [byStatus, byType, totals, last] = await Promise.all([
    db.select({ status: documents.status, n: count() }).from(documents).groupBy(documents.status),
    db.select({ mime: documents.mimeType, n: count() }).from(documents).groupBy(documents.mimeType),
    db
      .select({ documents: count(), bytes: sum(documents.byteSize), tokens: sum(documents.tokenCount) })
      .from(documents),
    queryRows<{ indexed_at: string | null }>(db, sql`select max(indexed_at) as indexed_at from kb_documents`),
  ]);
  const [chunkTotal] = await db
    .select({ n: count() })
    .from(chunks)
    .innerJoin(documents, and(eq(documents.id, chunks.documentId), eq(documents.activeGeneration, chunks.generation)));
  return {
    documents: totals[0]?.documents ?? 0,
    by_status: Object.fromEntries(byStatus.map((r) => [r.status, r.n])),
    by_type: Object.fromEntries(byType.map((r) => [r.mime.split(";")[0] ?? r.mime, r.n])),
    chunks: chunkTotal?.n ?? 0,
    tokens: Number(totals[0]?.tokens ?? 0),
    storage_bytes: Number(totals[0]?.bytes ?? 0),
    last_ingestion_at: last[0]?.indexed_at ? new Date(last[0].indexed_at).toISOString() : null,
  };
}
