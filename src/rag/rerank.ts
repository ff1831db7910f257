import type { Config } from "../config.ts";
import type { ModelCallMeter } from "../costs/model-calls.ts";
import { llmReranker } from "./llm-rerank.ts";
import type { SearchResult } from "./search.ts";

/**
 * A second-stage ranker over the fused results (an LLM or cross-encoder judging query–passage pairs).
 * Off by default: with the local stack there is no model that would rank better than the fusion, and
 * a remote one adds a round trip per search; RETRIEVAL_RERANKER turns one on (docs/retrieval.md#reranking).
 */
export interface Reranker {
  /** Names everything that shapes its order (e.g. the model): part of the search cache key. */
  readonly name: string;
  /** The same results, reordered (and possibly rescored or cut); never new ones. */
  rerank(query: string, results: SearchResult[]): Promise<SearchResult[]>;
}

/** The configured reranker, or undefined for none (the fused order stands); its calls go to `meter`. */
export function createReranker(config: Config, meter?: ModelCallMeter): Reranker | undefined {
  switch (config.RETRIEVAL_RERANKER) {
    case "llm":
      return llmReranker(config, meter);
    case "none":
      return undefined;
  }
}
