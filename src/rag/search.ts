import { and, eq, inArray } from "drizzle-orm";
import { createCache } from "../cache/multilevel.ts";
import type { Config } from "../config.ts";
import { meterFor } from "../costs/model-calls.ts";
import { createDb, type Database } from "../db/client.ts";
import { chunks, documents } from "../db/schema/kb.ts";
import type { Env } from "../env.ts";
import { kbVersion } from "../kb/cache-version.ts";
import { createEmbedder } from "../kb/embed/index.ts";
import type { Embedder } from "../kb/embed/port.ts";
import { createVectorStore } from "../kb/vectors/index.ts";
import type { VectorStore } from "../kb/vectors/port.ts";
import { type MetricEvent, recordMetrics } from "../metrics/record.ts";
import { currentWorkContext } from "../observability/context.ts";
import { keywordSearch, queryTerms } from "./bm25.ts";
import type { SearchFilters } from "./filters.ts";
import { type FusedHit, fuseRankings, type RankedHit, type RankedList } from "./fuse.ts";
import { createReranker, type Reranker } from "./rerank.ts";
import { cachedEmbedder, searchKey } from "./search-cache.ts";
import { snippetFor } from "./snippet.ts";
import { vectorSearch, vectorWeight } from "./vector.ts";

type SearchMode = "hybrid" | "keyword" | "vector";
type Retriever = "keyword" | "vector";
type SearchStage = "embed" | "keyword" | "vector" | "fuse" | "load" | "rerank";

export interface SearchRequest {
  query: string;
  topK?: number;
  filters?: SearchFilters;
  /** Minimum fused score, 0 to 1 (see fuseRankings). */
  scoreFloor?: number;
  mode?: SearchMode;
}

export interface SearchResult {
  documentId: string;
  externalId: string | null;
  title: string;
  chunkId: string;
  chunkIndex: number;
  page: number | null;
  headingPath: string[];
  /** The whole chunk, for answer prompts; the search route shows only the snippet. */
  text: string;
  snippet: string;
  score: number;
  retrievers: FusedHit<Retriever>["retrievers"];
}

export interface RetrieverReport {
  candidates: number;
  /** Its weight in the fusion, when it ran. */
  weight?: number;
  skipped?: string;
}

export interface SearchResponse {
  mode: SearchMode;
  results: SearchResult[];
  retrievers: Record<Retriever, RetrieverReport>;
  tookMs: number;
  /** Seconds spent in each stage that ran for this request (none when it was served from the cache). */
  stageSeconds: Partial<Record<SearchStage, number>>;
}

/** The outside world, replaceable in tests; ctx lets metrics go out in waitUntil. */
export interface SearchDeps {
  embedder?: Embedder;
  store?: VectorStore;
  reranker?: Reranker;
  ctx?: Pick<ExecutionContext, "waitUntil">;
  /** false: neither the query embedding nor the results are cached (docs/caching.md). */
  cache?: false;
  /** Who pays for the query embedding and the reranker; default: the signed-in user of the request. */
  userId?: string | null;
}

/** The embedder and reranker of a search, their calls metered for whoever searched (docs/costs.md). */
function searchModels(config: Config, env: Env, deps: SearchDeps) {
  const userId = deps.userId !== undefined ? deps.userId : (currentWorkContext()?.userId ?? null);
  const meter = (feature: "embeddings" | "reranker") =>
    meterFor(config, env, deps.ctx, { feature, userId, channel: "search" });
  return {
    embedder: deps.embedder ?? createEmbedder(config, meter("embeddings")),
    reranker: "reranker" in deps ? deps.reranker : createReranker(config, meter("reranker")),
  };
}

interface Arm {
  hits: RankedHit[];
  model?: string;
  skipped?: string;
}

/**
 * Hybrid retrieval: BM25 over the keyword index and vector similarity run in parallel, fused by
 * weighted reciprocal rank fusion, cut by the score floor and top_k, then loaded with their text.
 * Only chunks of each document's active generation are ever returned. Query embeddings and results are
 * cached (docs/caching.md); results under the knowledge-base version, which every add, delete or reindex bumps.
 */
export async function hybridSearch(
  config: Config,
  env: Env,
  request: SearchRequest,
  deps: SearchDeps = {},
): Promise<SearchResponse> {
  if (deps.cache === false) return runSearch(config, env, request, deps);
  const started = Date.now();
  const db = createDb(config);
  const embeddings = createCache<number[]>(
    config,
    env,
    { namespace: "embedding", ttlSeconds: config.CACHE_TTL_EMBEDDING_SECONDS },
    deps.ctx,
  );
  const models = searchModels(config, env, deps);
  const resolved = {
    ...deps,
    embedder: cachedEmbedder(models.embedder, embeddings),
    store: deps.store ?? createVectorStore(config, db),
    reranker: models.reranker,
  };
  const degraded = (found: SearchResponse) =>
    isDegraded(found.mode, found.retrievers.vector.skipped, queryTerms(request.query).size);
  // A degraded answer (vector arm down) must not outlast the outage; errors are never stored.
  const responses = createCache<SearchResponse>(
    config,
    env,
    { namespace: "search", ttlSeconds: config.CACHE_TTL_SEARCH_SECONDS, cacheable: (found) => !degraded(found) },
    deps.ctx,
  );
  // Read on every request, so a result cached before a delete is never served after it.
  const key = searchKey(config, request, await kbVersion(db), resolved);
  const { value, from } = await responses.lookup(key, () => runSearch(config, env, request, resolved));
  if (from !== "loader") {
    const outcome = degraded(value) ? "degraded" : value.results.length ? "ok" : "empty";
    await recordMetrics(env, deps.ctx, { name: "kb_search_total", labels: { mode: value.mode, outcome }, value: 1 });
  }
  return { ...value, tookMs: Date.now() - started, stageSeconds: from === "loader" ? value.stageSeconds : {} };
}

/** The search itself, uncached. */
async function runSearch(
  config: Config,
  env: Env,
  request: SearchRequest,
  deps: SearchDeps = {},
): Promise<SearchResponse> {
  const started = Date.now();
  const mode = request.mode ?? "hybrid";
  const filters = request.filters ?? {};
  const limit = config.RETRIEVAL_CANDIDATES;
  const db = createDb(config);
  const metrics: MetricEvent[] = [];
  const stageSeconds: SearchResponse["stageSeconds"] = {};
  const models = searchModels(config, env, deps);
  const timed = async <T>(stage: SearchStage, work: () => Promise<T>): Promise<T> => {
    const stageStarted = performance.now();
    try {
      return await work();
    } finally {
      const seconds = (performance.now() - stageStarted) / 1000;
      stageSeconds[stage] = seconds;
      metrics.push({ name: "kb_search_duration_seconds", labels: { stage }, value: seconds });
    }
  };
  const outcome = (value: string): MetricEvent => ({
    name: "kb_search_total",
    labels: { mode, outcome: value },
    value: 1,
  });

  try {
    const terms = queryTerms(request.query);
    const notRequested = `not requested (mode ${mode})`;
    const keywordArm = async (): Promise<Arm> => {
      if (mode === "vector") return { hits: [], skipped: notRequested };
      if (terms.size === 0) return { hits: [], skipped: "the query has no searchable words" };
      const bm25 = { k1: config.RETRIEVAL_BM25_K1, b: config.RETRIEVAL_BM25_B };
      return { hits: await timed("keyword", () => keywordSearch(db, terms, { limit, filters, bm25 })) };
    };
    const vectorArm = async (): Promise<Arm> => {
      if (mode === "keyword") return { hits: [], skipped: notRequested };
      const embedder = models.embedder;
      const store = deps.store ?? createVectorStore(config, db);
      return vectorSearch({ db, embedder, store, timed }, request.query, { limit, filters });
    };
    const [keyword, vector] = await Promise.all([keywordArm(), vectorArm()]);

    const weights: Record<Retriever, number> = {
      keyword: config.RETRIEVAL_WEIGHT_KEYWORD,
      vector: vectorWeight(config.RETRIEVAL_WEIGHT_VECTOR, vector.model ?? ""),
    };
    const lists: RankedList<Retriever>[] = [];
    if (!keyword.skipped) lists.push({ retriever: "keyword", weight: weights.keyword, hits: keyword.hits });
    if (!vector.skipped) lists.push({ retriever: "vector", weight: weights.vector, hits: vector.hits });
    // Off by default (rerank.ts): the fused order stands. When on, it judges more than top_k, so it can
    // bring a better chunk into the cut rather than only reorder the ones already in it.
    const reranker = models.reranker;
    const topK = request.topK ?? config.RETRIEVAL_TOP_K;
    const judged = reranker ? Math.max(topK, config.RETRIEVAL_RERANK_CANDIDATES) : topK;
    const fused = await timed("fuse", async () =>
      fuseRankings(lists, config.RETRIEVAL_RRF_K)
        .filter((hit) => hit.score >= (request.scoreFloor ?? 0))
        .slice(0, judged),
    );
    const loaded = await timed("load", () => loadResults(db, fused, new Set(terms.keys())));
    const results = reranker
      ? (await timed("rerank", () => reranker.rerank(request.query, loaded))).slice(0, topK)
      : loaded;

    const degraded = isDegraded(mode, vector.skipped, terms.size);
    metrics.push(outcome(degraded ? "degraded" : results.length ? "ok" : "empty"));
    await recordMetrics(env, deps.ctx, ...metrics);
    return {
      mode,
      results,
      retrievers: { keyword: report(keyword, weights.keyword), vector: report(vector, weights.vector) },
      tookMs: Date.now() - started,
      stageSeconds,
    };
  } catch (error) {
    await recordMetrics(env, deps.ctx, ...metrics, outcome("error"));
    throw error;
  }
}

/** Degraded: the vector arm was wanted and could not run although the query had words to embed. */
const isDegraded = (mode: SearchMode, vectorSkipped: string | undefined, termCount: number) =>
  mode !== "keyword" && vectorSkipped !== undefined && termCount > 0;

const report = (arm: Arm, weight: number): RetrieverReport => ({
  candidates: arm.hits.length,
  ...(arm.skipped ? { skipped: arm.skipped } : { weight }),
});

/** Chunk and document rows for the fused hits, in fused order; re-checks the active generation. */
async function loadResults(db: Database, hits: FusedHit<Retriever>[], terms: Set<string>): Promise<SearchResult[]> {
  if (hits.length === 0) return [];
  const rows = await db
    .select({
      chunkId: chunks.id,
      chunkIndex: chunks.chunkIndex,
      page: chunks.page,
      headingPath: chunks.headingPath,
      text: chunks.text,
      documentId: documents.id,
      externalId: documents.externalId,
      title: documents.title,
    })
    .from(chunks)
    .innerJoin(documents, and(eq(documents.id, chunks.documentId), eq(documents.activeGeneration, chunks.generation)))
    .where(
      inArray(
        chunks.id,
        hits.map((h) => h.chunkId),
      ),
    );
  const byId = new Map(rows.map((row) => [row.chunkId, row]));
  // A chunk can vanish between retrieval and loading (a flip or a delete): it is left out.
  return hits.flatMap((hit) => {
    const row = byId.get(hit.chunkId);
    if (!row) return [];
    return [{ ...row, snippet: snippetFor(row.text, terms), score: hit.score, retrievers: hit.retrievers }];
  });
}
