import { and, eq, lt, ne, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { meterFor } from "../costs/model-calls.ts";
import { createDb, postgresErrorCode, withPoolDb } from "../db/client.ts";
import { chunks, documents, postings } from "../db/schema/kb.ts";
import type { Env } from "../env.ts";
import { ApiError, isTransient } from "../errors.ts";
import { type MetricEvent, recordMetrics } from "../metrics/record.ts";
import { describeError, safeErrorMessage } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { enqueue, envelope } from "../observability/outbound.ts";
import { bumpKbVersion } from "./cache-version.ts";
import { chunkDocument, estimateTokens } from "./chunk.ts";
import { createEmbedder } from "./embed/index.ts";
import type { Embedder } from "./embed/port.ts";
import { extractDocument } from "./extract/index.ts";
import { chunkId } from "./ids.ts";
import { indexFor } from "./index-spec.ts";
import { documentReadyTime, readyClockStart } from "./ready-time.ts";
import { termFrequencies } from "./terms.ts";
import { createVectorStore } from "./vectors/index.ts";
import { type IndexSpec, type VectorStore, VectorStoreUnavailable } from "./vectors/port.ts";

export const INGEST_MESSAGE = "kb.ingest";

/** The queue KB_INGEST feeds and the consumer reads (wrangler.toml), as metric labels name it. */
export const INGEST_QUEUE = "kb-ingest";

/** Build `generation` of a document's chunks; it becomes visible only once complete. */
interface IngestJob {
  documentId: string;
  generation: number;
  /** ISO time of the reindex, retry or rebuild that asked for it; uploads and imports leave it out. */
  requestedAt?: string | undefined;
}

export const queueIngestion = (env: Env, job: IngestJob) => enqueue(env.KB_INGEST, INGEST_MESSAGE, job);

// A queue takes at most 100 messages per sendBatch call.
const SEND_BATCH = 100;

/** Queues many ingestion jobs (an import, an index rebuild, stuck documents), 100 messages per send. */
export async function queueIngestions(env: Env, jobs: IngestJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += SEND_BATCH) {
    await env.KB_INGEST.sendBatch(
      jobs
        .slice(i, i + SEND_BATCH)
        .map((job) => ({ body: envelope(INGEST_MESSAGE, job), contentType: "json" as const })),
    );
  }
}

type Stage = "fetch" | "extract" | "chunk" | "embed" | "write";
const FOREIGN_KEY_VIOLATION = "23503";
const ROWS_PER_INSERT = 1_000;

class DocumentGone extends Error {}

type IngestOutcome = "indexed" | "already_indexed" | "already_failed" | "document_gone" | "failed";

/**
 * Runs one ingestion: fetch from R2, extract, chunk, embed, write chunks + postings + vectors under
 * the new generation, then flip the document to it in one update and drop older generations.
 * Redelivery is safe at every step (derived chunk ids, upserts, a guarded flip). Transient failures
 * throw (the queue retries); permanent ones, or the last attempt, mark the document failed.
 * Reaching a final state (ready, failed) is timed once, in kb_document_ready_seconds.
 */
export async function ingestDocument(
  env: Env,
  config: Config,
  job: IngestJob,
  attempt: number,
  // The outside world, replaceable in tests (e.g. a store that fails half-way).
  deps: { embedder?: Embedder; store?: VectorStore } = {},
): Promise<IngestOutcome> {
  const db = createDb(config);
  const [document] = await db.select().from(documents).where(eq(documents.id, job.documentId));
  if (!document) return "document_gone";
  if (document.activeGeneration >= job.generation) return "already_indexed";
  // Every request for a new generation sets the document queued first: this is a redelivery of the message
  // that failed it, and must not fail it (and dead-letter it) twice.
  if (document.status === "failed") return "already_failed";
  const since = readyClockStart(document, job.requestedAt);

  const timings: Record<string, number> = {};
  const metrics: MetricEvent[] = [];
  const timed = async <T>(stage: Stage, work: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    await db
      .update(documents)
      .set({ status: "processing", stage, attempts: attempt, updatedAt: new Date() })
      .where(eq(documents.id, job.documentId));
    const result = await work();
    timings[`${stage}_ms`] = Date.now() - started;
    metrics.push({ name: "kb_ingest_stage_duration_seconds", labels: { stage }, value: (Date.now() - started) / 1000 });
    return result;
  };

  try {
    const bytes = await timed("fetch", async () => {
      const object = await env.DOCUMENTS.get(document.r2Key);
      if (!object) throw new DocumentGone();
      return new Uint8Array(await object.arrayBuffer());
    });
    const extracted = await timed("extract", () =>
      extractDocument(bytes, { contentType: document.mimeType, filename: document.title }),
    );
    const pieces = await timed("chunk", async () =>
      chunkDocument(extracted.document.blocks, { size: config.KB_CHUNK_SIZE, overlap: config.KB_CHUNK_OVERLAP }),
    );
    if (pieces.length === 0) throw new ApiError("VALIDATION_FAILED", "The document has no text to index.");
    // The uploader pays for the document's embeddings (null when the row names none).
    const uploader = { feature: "embeddings", userId: document.createdBy, channel: "ingest" } as const;
    const embedder = deps.embedder ?? createEmbedder(config, meterFor(config, env, undefined, uploader));
    const index = await indexFor(db, embedder);
    const store = deps.store ?? createVectorStore(config);
    const withVectors = await vectorStoreReady(store, index);
    const vectors = await timed("embed", async () => {
      const out: number[][] = [];
      if (!withVectors) return out;
      for (let i = 0; i < pieces.length; i += config.EMBEDDING_BATCH_SIZE) {
        const batch = pieces.slice(i, i + config.EMBEDDING_BATCH_SIZE);
        out.push(...(await embedder.embed(batch.map((p) => p.text))));
        await db
          .update(documents)
          .set({
            chunksDone: out.length,
            progress: Math.round((80 * out.length) / pieces.length),
            updatedAt: new Date(),
          })
          .where(eq(documents.id, job.documentId));
      }
      return out;
    });
    const rows = await Promise.all(
      pieces.map(async (p) => ({
        id: await chunkId(job.documentId, job.generation, p.index),
        documentId: job.documentId,
        generation: job.generation,
        chunkIndex: p.index,
        text: p.text,
        charStart: p.charStart,
        charEnd: p.charEnd,
        page: p.page ?? null,
        headingPath: p.headingPath,
        tokenCount: estimateTokens(p.text),
        terms: termFrequencies(p.text),
      })),
    );
    await timed("write", async () => {
      await writeGeneration(config, rows);
      if (!withVectors) return;
      await store.upsert(
        index,
        rows.map((r, i) => ({ chunkId: r.id, documentId: job.documentId, vector: vectors[i] as number[] })),
      );
    });
    const flipped = await flipToGeneration(config, job, {
      chunkCount: rows.length,
      tokenCount: rows.reduce((sum, r) => sum + r.tokenCount, 0),
      embeddingModel: withVectors ? index.model : null,
      embeddingDimensions: withVectors ? index.dimensions : null,
      timings,
      title: extracted.document.title,
    });
    if (flipped.staleChunkIds.length) await store.deleteChunks(index, flipped.staleChunkIds);
    if (flipped.gone) {
      // Deleted while we worked: the cascade took chunks and pgvector rows; other stores need telling.
      await store.deleteDocument(index, job.documentId);
      return "document_gone";
    }
    metrics.push({ name: "kb_chunks_per_document", labels: {}, value: rows.length });
    if (flipped.flipped) metrics.push(documentReadyTime(since, "ready"));
    await recordMetrics(env, undefined, ...metrics);
    return flipped.flipped ? "indexed" : "already_indexed";
  } catch (error) {
    if (error instanceof DocumentGone || postgresErrorCode(error) === FOREIGN_KEY_VIOLATION) {
      await recordMetrics(env, undefined, ...metrics);
      return "document_gone";
    }
    return handleFailure(env, config, { job, attempt, since }, error, metrics);
  }
}

/**
 * Whether vectors can be stored. A store that is not set up (a Postgres without pgvector and no
 * QDRANT_URL) is reported by health as down; documents are then indexed for keyword search only, and a
 * later index rebuild adds their vectors. Any other store error is a real failure.
 */
async function vectorStoreReady(store: VectorStore, index: IndexSpec): Promise<boolean> {
  try {
    await store.ensureIndex(index);
    return true;
  } catch (error) {
    if (!(error instanceof VectorStoreUnavailable)) throw error;
    log("warn", "vector store unavailable: indexing for keyword search only", { error: describeError(error) });
    return false;
  }
}

interface ChunkRow extends Omit<typeof chunks.$inferInsert, "id" | "termCount"> {
  id: string;
  tokenCount: number;
  terms: Map<string, number>;
}

/** Chunks and postings of one generation, in one transaction; a rerun first clears a partial one. */
async function writeGeneration(config: Config, rows: ChunkRow[]): Promise<void> {
  const first = rows[0];
  if (!first) return;
  await withPoolDb(config, (db) =>
    db.transaction(async (tx) => {
      await tx
        .delete(chunks)
        .where(and(eq(chunks.documentId, first.documentId), eq(chunks.generation, first.generation)));
      for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
        await tx.insert(chunks).values(
          rows.slice(i, i + ROWS_PER_INSERT).map(({ terms, ...row }) => ({
            ...row,
            termCount: [...terms.values()].reduce((a, b) => a + b, 0),
          })),
        );
      }
      const allPostings = rows.flatMap((r) => [...r.terms].map(([term, tf]) => ({ term, chunkId: r.id, tf })));
      for (let i = 0; i < allPostings.length; i += ROWS_PER_INSERT) {
        await tx.insert(postings).values(allPostings.slice(i, i + ROWS_PER_INSERT));
      }
    }),
  );
}

/**
 * Makes the new generation the visible one and deletes older ones (their postings and pgvector rows
 * go by cascade), all in one transaction. Returns the deleted chunk ids for other vector stores.
 */
async function flipToGeneration(
  config: Config,
  job: IngestJob,
  summary: {
    chunkCount: number;
    tokenCount: number;
    embeddingModel: string | null;
    embeddingDimensions: number | null;
    timings: Record<string, number>;
    /** The document's own title, if extraction found one. */
    title: string | undefined;
  },
): Promise<{ flipped: boolean; gone: boolean; staleChunkIds: string[] }> {
  return withPoolDb(config, (db) =>
    db.transaction(async (tx) => {
      const flipped = await tx
        .update(documents)
        .set({
          activeGeneration: job.generation,
          status: "ready",
          stage: "done",
          progress: 100,
          chunksDone: summary.chunkCount,
          chunkCount: summary.chunkCount,
          tokenCount: summary.tokenCount,
          embeddingModel: summary.embeddingModel,
          embeddingDimensions: summary.embeddingDimensions,
          timings: summary.timings,
          error: null,
          indexedAt: new Date(),
          updatedAt: new Date(),
        })
        .where(and(eq(documents.id, job.documentId), lt(documents.activeGeneration, job.generation)))
        .returning({ id: documents.id });
      if (flipped.length && summary.title) {
        // Only a title that is the file name gives way; one the admin gave never does.
        await tx
          .update(documents)
          .set({ title: summary.title, titleSource: "document" })
          .where(and(eq(documents.id, job.documentId), ne(documents.titleSource, "given")));
      }
      // Everything but the active generation goes: older ones, or ours if a newer one won meanwhile.
      const active = sql`(select active_generation from kb_documents where id = ${job.documentId})`;
      const stale = await tx
        .delete(chunks)
        .where(and(eq(chunks.documentId, job.documentId), ne(chunks.generation, active)))
        .returning({ id: chunks.id });
      if (flipped.length) await bumpKbVersion(tx);
      const [still] = flipped.length
        ? [true]
        : await tx.select({ id: documents.id }).from(documents).where(eq(documents.id, job.documentId));
      return { flipped: flipped.length > 0, gone: !still, staleChunkIds: stale.map((c) => c.id) };
    }),
  );
}

/** Permanent errors (4xx: unreadable file, index mismatch) and the last attempt fail the document. */
async function handleFailure(
  env: Env,
  config: Config,
  { job, attempt, since }: { job: IngestJob; attempt: number; since: Date },
  error: unknown,
  metrics: MetricEvent[],
): Promise<IngestOutcome> {
  const permanent = !isTransient(error);
  const final = permanent || attempt >= config.KB_INGEST_MAX_ATTEMPTS;
  const reason = failureReason(error);
  // A library's message may quote the file (a NUL included), and Postgres would refuse to store it.
  const message = safeErrorMessage(error).replaceAll("\u0000", "\uFFFD");
  const readable = final
    ? `${message}${permanent ? "" : ` (gave up after ${attempt} attempts)`}`
    : `Attempt ${attempt} of ${config.KB_INGEST_MAX_ATTEMPTS} failed: ${message}; retrying.`;
  await createDb(config)
    .update(documents)
    .set({ status: final ? "failed" : "queued", error: readable, attempts: attempt, updatedAt: new Date() })
    .where(eq(documents.id, job.documentId));
  metrics.push({ name: "kb_ingest_failures_total", labels: { reason, final: String(final) }, value: 1 });
  if (final) metrics.push(documentReadyTime(since, "failed"));
  await recordMetrics(env, undefined, ...metrics);
  log(final ? "error" : "warn", "ingestion failed", { document_id: job.documentId, attempt, reason, error: message });
  if (!final) throw error;
  // Kept in the dead-letter queue for inspection; an admin retry enqueues a fresh message.
  await enqueue(env.KB_INGEST_DLQ, INGEST_MESSAGE, { ...job, error: readable });
  await recordMetrics(env, undefined, { name: "kb_dead_letters_total", labels: { queue: INGEST_QUEUE }, value: 1 });
  return "failed";
}

function failureReason(error: unknown): string {
  if (!(error instanceof ApiError)) return "internal";
  if (error.code === "CONFLICT") return "index_mismatch";
  if (error.code.startsWith("UPSTREAM")) return "embed";
  if (error.status < 500) return "extract";
  return "store";
}
