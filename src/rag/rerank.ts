import type { SearchResult } from "./search.ts";

/**
 * A second-stage ranker over the fused results (an LLM or cross-encoder judging query–passage pairs).
 * Off by default: with the local stack there is no model that would rank better than the fusion, and
 * a remote one adds a round trip per search; a configured reranker plugs in here (docs/retrieval.md).
 */
export interface Reranker {
  readonly name: string;
  /** The same results, reordered (and possibly rescored or cut); never new ones. */
  rerank(query: string, results: SearchResult[]): Promise<SearchResult[]>;
}
