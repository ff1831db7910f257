/** One retriever's answer: chunks in rank order, best first, with that retriever's own score. */
export interface RankedHit {
  chunkId: string;
  documentId: string;
  score: number;
}

export interface RankedList<R extends string = string> {
  retriever: R;
  weight: number;
  hits: RankedHit[];
}

export interface FusedHit<R extends string = string> {
  chunkId: string;
  documentId: string;
  /** Weighted RRF divided by its maximum (rank 1 in every list), so 1 means "first everywhere". */
  score: number;
  /** Where each retriever that found the chunk ranked it (1-based) and its own score. */
  retrievers: Partial<Record<R, { rank: number; score: number }>>;
}

/**
 * Weighted reciprocal rank fusion (Cormack et al. 2009): score(c) = Σ w_r / (k + rank_r(c)).
 * Ranks, not raw scores, are fused, so BM25 and cosine scales never need calibrating.
 */
export function fuseRankings<R extends string>(lists: RankedList<R>[], k: number): FusedHit<R>[] {
  const fused = new Map<string, FusedHit<R> & { rrf: number; bestRank: number }>();
  for (const list of lists) {
    list.hits.forEach((hit, i) => {
      const rank = i + 1;
      let entry = fused.get(hit.chunkId);
      if (!entry) {
        entry = { chunkId: hit.chunkId, documentId: hit.documentId, score: 0, retrievers: {}, rrf: 0, bestRank: rank };
        fused.set(hit.chunkId, entry);
      }
      // A list naming a chunk twice keeps its first (best) rank.
      if (entry.retrievers[list.retriever]) return;
      entry.retrievers[list.retriever] = { rank, score: hit.score };
      entry.rrf += list.weight / (k + rank);
      entry.bestRank = Math.min(entry.bestRank, rank);
    });
  }
  const max = lists.reduce((sum, list) => sum + list.weight / (k + 1), 0);
  return [...fused.values()]
    .sort((a, b) => b.rrf - a.rrf || a.bestRank - b.bestRank || (a.chunkId < b.chunkId ? -1 : 1))
    .map(({ rrf, bestRank: _, ...hit }) => ({ ...hit, score: max > 0 ? rrf / max : 0 }));
}
