import { and, arrayContains, asc, count, desc, eq, ilike, type SQL, sql, sum } from "drizzle-orm";
import { sha256Hex } from "../auth/crypto.ts";
import type { Config } from "../config.ts";
import { createDb, queryRows } from "../db/client.ts";
import { pageOffset } from "../db/paging.ts";
import { chunks, type DocumentStatus, documents, embeddingIndexes, type TitleSource } from "../db/schema/kb.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { bumpKbVersion } from "./cache-version.ts";
import { createEmbedder } from "./embed/index.ts";
import { DEFAULT_INDEX, recordedIndex } from "./index-spec.ts";
import { queueIngestion, queueIngestions } from "./ingest.ts";
import { createVectorStore } from "./vectors/index.ts";
import type { IndexSpec } from "./vectors/port.ts";

// The document catalogue: what the knowledge base holds, and every change an admin makes to it.

// Routes name statuses and title sources in their schemas without reaching into the database layer.
export { documentStatuses, titleSources } from "../db/schema/kb.ts";

export type DocumentRow = typeof documents.$inferSelect;
export type ChunkRow = typeof chunks.$inferSelect;

/** One page of a list, with the count of every matching row. */
export interface Page<T> {
  rows: T[];
  total: number;
}

export interface PageRequest {
  page: number;
  pageSize: number;
}

/** The document with this id; undefined once it is deleted. */
export async function findDocument(config: Config, id: string): Promise<DocumentRow | undefined> {
  const [document] = await createDb(config).select().from(documents).where(eq(documents.id, id));
  return document;
}

/** The document with this id, or 404. */
export async function getDocument(config: Config, id: string): Promise<DocumentRow> {
  const document = await findDocument(config, id);
  if (!document) throw new ApiError("NOT_FOUND", "No knowledge-base document with this id.");
  return document;
}

export interface DocumentFilter {
  status?: DocumentStatus | undefined;
  sourceType?: string | undefined;
  tag?: string | undefined;
  /** Found anywhere in the title, case-insensitively; LIKE wildcards match themselves. */
  titleContains?: string | undefined;
}

/** Newest first. */
export async function listDocuments(
  config: Config,
  filter: DocumentFilter,
  { page, pageSize }: PageRequest,
): Promise<Page<DocumentRow>> {
  const filters: SQL[] = [];
  if (filter.status) filters.push(eq(documents.status, filter.status));
  if (filter.sourceType) filters.push(eq(documents.sourceType, filter.sourceType));
  if (filter.tag) filters.push(arrayContains(documents.tags, [filter.tag]));
  if (filter.titleContains) {
    filters.push(ilike(documents.title, `%${filter.titleContains.replace(/[\\%_]/g, (m) => `\\${m}`)}%`));
  }
  const where = filters.length ? and(...filters) : undefined;
  const db = createDb(config);
  const [rows, totals] = await Promise.all([
    db
      .select()
      .from(documents)
      .where(where)
      .orderBy(desc(documents.createdAt), desc(documents.id))
      .limit(pageSize)
      .offset(pageOffset(page, pageSize)),
    db.select({ total: count() }).from(documents).where(where),
  ]);
  return { rows, total: totals[0]?.total ?? 0 };
}

/** The chunks searches see: those of the document's active generation, in document order. */
export async function documentChunks(
  config: Config,
  document: DocumentRow,
  { page, pageSize }: PageRequest,
): Promise<Page<ChunkRow>> {
  const where = and(eq(chunks.documentId, document.id), eq(chunks.generation, document.activeGeneration));
  const db = createDb(config);
  const [rows, totals] = await Promise.all([
    db
      .select()
      .from(chunks)
      .where(where)
      .orderBy(asc(chunks.chunkIndex))
      .limit(pageSize)
      .offset(pageOffset(page, pageSize)),
    db.select({ total: count() }).from(chunks).where(where),
  ]);
  return { rows, total: totals[0]?.total ?? 0 };
}

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
  if (existing) {
    if (existing.status === "queued" && existing.activeGeneration === 0) await storeAndQueue(env, existing, input);
    return { document: existing, duplicate: true };
  }
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
    await storeAndQueue(env, document, input);
  } catch (error) {
    await env.DOCUMENTS.delete(r2Key).catch(() => {});
    await db.delete(documents).where(eq(documents.id, id));
    throw new ApiError("UPSTREAM_UNAVAILABLE", "The document could not be stored or queued; nothing was kept. Retry.", {
      cause: error,
    });
  }
  return { document, duplicate: false };
}

/**
 * The bytes in R2, then the first ingestion message. Also run again for an upload of the same bytes while the
 * document is still queued for its first ingestion: the first attempt may have died after its row (a client
 * timeout, a cancelled request) with neither stored, and both are idempotent (same key; ingestion skips a
 * generation already indexed).
 */
async function storeAndQueue(env: Env, document: DocumentRow, input: NewDocument): Promise<void> {
  await env.DOCUMENTS.put(document.r2Key, input.bytes, {
    httpMetadata: { contentType: input.mimeType },
    customMetadata: { sha256: document.sha256, documentId: document.id },
  });
  await queueIngestion(env, { documentId: document.id, generation: 1 });
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

/** A document back at the start of ingestion, as of `requestedAt`. */
const queuedAgain = (requestedAt: Date) =>
  ({
    status: "queued",
    stage: null,
    progress: 0,
    chunksDone: 0,
    error: null,
    attempts: 0,
    updatedAt: requestedAt,
  }) as const;

/**
 * Queues a rebuild into the next generation (a reindex, or the retry of a failed document); the current
 * chunks stay visible until it completes. The message carries the request time: its ready time starts there.
 */
export async function requestReindex(env: Env, config: Config, document: DocumentRow): Promise<void> {
  const requestedAt = new Date();
  await createDb(config).update(documents).set(queuedAgain(requestedAt)).where(eq(documents.id, document.id));
  await queueIngestion(env, {
    documentId: document.id,
    generation: document.activeGeneration + 1,
    requestedAt: requestedAt.toISOString(),
  });
}

/**
 * Switches the vector index to the configured embedder: records its model and dimension, drops every
 * old vector (so the index is never mixed) and queues every document's next generation. Until a
 * document is re-embedded it is found by keyword search only.
 */
export async function rebuildIndex(
  env: Env,
  config: Config,
): Promise<{ model: string; dimensions: number; queued: number; previous: IndexSpec | undefined }> {
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
  const requestedAt = new Date();
  const all = await db
    .update(documents)
    .set(queuedAgain(requestedAt))
    .returning({ id: documents.id, generation: documents.activeGeneration });
  await bumpKbVersion(db);
  await queueIngestions(
    env,
    all.map((d) => ({ documentId: d.id, generation: d.generation + 1, requestedAt: requestedAt.toISOString() })),
  );
  return { model: embedder.model, dimensions: embedder.dimensions, queued: all.length, previous };
}

/** Documents by status and type, chunks searches see, tokens, storage and the last ingestion. */
export async function knowledgeBaseStats(config: Config) {
  const db = createDb(config);
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
