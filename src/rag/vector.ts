import { sql } from "drizzle-orm";
import { type Database, queryRows } from "../db/client.ts";
import { LOCAL_MODEL } from "../kb/embed/local.ts";
import type { Embedder } from "../kb/embed/port.ts";
import { recordedIndex } from "../kb/index-spec.ts";
import type { VectorStore } from "../kb/vectors/port.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { activeChunks, documentConditions, type SearchFilters } from "./filters.ts";
import type { RankedHit } from "./fuse.ts";

// Raw hits include chunks of older generations and of filtered-out documents: ask for more than needed.
const OVERFETCH = 3;
// The local embedder hashes the words BM25 already scores: fused at weight 1 it cost 0.10 nDCG@10 on
// SciFact (docs/retrieval.md); this small weight keeps what it adds (spelling variants) as a tie-breaker.
const LEXICAL_EMBEDDER_WEIGHT = 0.02;

/** The vector arm's fusion weight: RETRIEVAL_WEIGHT_VECTOR when set, else by the index's model. */
export const vectorWeight = (configured: number | undefined, model: string): number =>
  configured ?? (model === LOCAL_MODEL ? LEXICAL_EMBEDDER_WEIGHT : 1);

interface VectorArmResult {
  hits: RankedHit[];
  /** The embedding model searched, when the arm ran. */
  model?: string;
  /** Why the arm did not run (the search then stands on keywords alone). */
  skipped?: string;
}

interface VectorArmDeps {
  db: Database;
  embedder: Embedder;
  store: VectorStore;
  /** Times a stage (embed, vector) of this arm. */
  timed: <T>(stage: "embed" | "vector", work: () => Promise<T>) => Promise<T>;
}

/**
 * Vector retrieval: embed the query with the model the index was built with, over-fetch from the
 * store, then keep hits whose chunk is in its document's active generation and passes the filters.
 * Never mixes models and never fails the search: anything that stops it is reported as `skipped`.
 */
export async function vectorSearch(
  deps: VectorArmDeps,
  query: string,
  options: { limit: number; filters: SearchFilters },
): Promise<VectorArmResult> {
  const { db, embedder, store, timed } = deps;
  const index = await recordedIndex(db);
  if (!index) return { hits: [], skipped: "no document has been embedded yet" };
  if (index.model !== embedder.model || index.dimensions !== embedder.dimensions) {
    return {
      hits: [],
      skipped: `the vector index holds ${index.model} (${index.dimensions} dimensions) but the configured embedder is ${embedder.model} (${embedder.dimensions}); rebuild the index to search by meaning`,
    };
  }
  let vector: number[];
  try {
    [vector = []] = await timed("embed", () => embedder.embed([query]));
  } catch (error) {
    log("warn", "query embedding failed; keyword search only", { error: describeError(error) });
    return { hits: [], skipped: "the embedding service is unavailable" };
  }
  if (!vector.some((x) => x !== 0)) return { hits: [], skipped: "the query has nothing to embed" };
  try {
    return {
      model: index.model,
      hits: await timed("vector", async () => {
        const raw = await store.query(index, vector, {
          topK: options.limit * OVERFETCH,
          documentIds: options.filters.documentIds,
        });
        const visible = await visibleChunks(
          db,
          raw.map((h) => h.chunkId),
          options.filters,
        );
        return raw.filter((h) => visible.has(h.chunkId)).slice(0, options.limit);
      }),
    };
  } catch (error) {
    log("warn", "vector search failed; keyword search only", {
      backend: store.backend,
      error: describeError(error),
    });
    return { hits: [], skipped: `the vector store (${store.backend}) is unavailable` };
  }
}

/** Which of these chunks are in their document's active generation and pass the filters: one query. */
async function visibleChunks(db: Database, chunkIds: string[], filters: SearchFilters): Promise<Set<string>> {
  if (chunkIds.length === 0) return new Set();
  const rows = await queryRows<{ id: string }>(
    db,
    sql`select c.id from ${activeChunks}
        where c.id = any(${sql.param(chunkIds)}::uuid[]) ${documentConditions(filters)}`,
  );
  return new Set(rows.map((r) => r.id));
}
