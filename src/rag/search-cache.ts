import type { Cache } from "../cache/multilevel.ts";
import type { Config } from "../config.ts";
import { canonicalJson } from "../json.ts";
import type { Embedder } from "../kb/embed/port.ts";
import type { VectorStore } from "../kb/vectors/port.ts";
import type { Reranker } from "./rerank.ts";
import type { SearchRequest } from "./search.ts";

// What retrieval caches (docs/caching.md): query embeddings, and whole search responses.

/** The embedder, its single-text calls (queries) served through the cache; batches (ingestion) pass through. */
export function cachedEmbedder(embedder: Embedder, cache: Cache<number[]>): Embedder {
  const { model, dimensions } = embedder;
  return {
    model,
    dimensions,
    async embed(texts) {
      const [text] = texts;
      if (texts.length !== 1 || text === undefined) return embedder.embed(texts);
      // Model and dimension name the vector space; the knowledge base plays no part, so no version.
      const vector = await cache.getOrLoad(`${model}:${dimensions}:${text}`, async () => {
        const [embedded = []] = await embedder.embed([text]);
        return embedded;
      });
      return [vector];
    },
  };
}

/** Everything that shapes a search's results, as one stable string, the knowledge-base version included. */
export function searchKey(
  config: Config,
  request: SearchRequest,
  kbVersion: number,
  parts: { embedder: Embedder; store: VectorStore; reranker?: Reranker | undefined },
): string {
  return canonicalJson({
    kb: kbVersion,
    mode: request.mode ?? "hybrid",
    query: request.query,
    topK: request.topK ?? config.RETRIEVAL_TOP_K,
    filters: request.filters ?? {},
    scoreFloor: request.scoreFloor ?? 0,
    weights: [config.RETRIEVAL_WEIGHT_KEYWORD, config.RETRIEVAL_WEIGHT_VECTOR ?? "default"],
    bm25: [config.RETRIEVAL_BM25_K1, config.RETRIEVAL_BM25_B],
    rrfK: config.RETRIEVAL_RRF_K,
    candidates: config.RETRIEVAL_CANDIDATES,
    embedder: [parts.embedder.model, parts.embedder.dimensions],
    store: parts.store.backend,
    reranker: parts.reranker?.name ?? "none",
  });
}
