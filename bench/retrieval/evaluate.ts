// The retrieval evaluator of bench/retrieval: nDCG@k and Recall@k as BEIR computes them (pytrec_eval,
// i.e. trec_eval: linear gain = the judged grade, log2(rank + 1) discount, ideal ranking from the
// judgments). Pure: rankings and judgments in, figures out.

/** query id → document id → relevance grade (0 = judged not relevant). */
export type Judgments = Map<string, Map<string, number>>;

/** Reads BEIR qrels (TSV: query-id, corpus-id, score; with a header line). */
export function parseQrels(tsv: string): Judgments {
  const judgments: Judgments = new Map();
  for (const [i, line] of tsv.split(/\r?\n/).entries()) {
    if (!line.trim() || (i === 0 && /query-id/i.test(line))) continue;
    const [query, doc, grade] = line.split("\t");
    const score = Number(grade);
    if (!query || !doc || !Number.isFinite(score)) throw new Error(`qrels line ${i + 1} is not "query\\tdoc\\tscore"`);
    if (!judgments.has(query)) judgments.set(query, new Map());
    judgments.get(query)?.set(doc, score);
  }
  return judgments;
}

/** nDCG@k of one ranking; 0 when nothing relevant is judged. */
export function ndcgAt(ranking: readonly string[], judged: ReadonlyMap<string, number>, k: number): number {
  const dcg = ranking.slice(0, k).reduce((sum, doc, i) => sum + (judged.get(doc) ?? 0) / Math.log2(i + 2), 0);
  const ideal = [...judged.values()]
    .filter((grade) => grade > 0)
    .sort((a, b) => b - a)
    .slice(0, k)
    .reduce((sum, grade, i) => sum + grade / Math.log2(i + 2), 0);
  return ideal > 0 ? dcg / ideal : 0;
}

/** Share of the relevant documents found in the first k. */
export function recallAt(ranking: readonly string[], judged: ReadonlyMap<string, number>, k: number): number {
  const relevant = [...judged].filter(([, grade]) => grade > 0).map(([doc]) => doc);
  if (relevant.length === 0) return 0;
  const top = new Set(ranking.slice(0, k));
  return relevant.filter((doc) => top.has(doc)).length / relevant.length;
}

export interface Evaluation {
  queries: number;
  ndcg10: number;
  recall100: number;
}

/** Means over every judged query; a query missing from `rankings` scores 0 (as in BEIR). */
export function evaluate(rankings: ReadonlyMap<string, readonly string[]>, judgments: Judgments): Evaluation {
  let ndcg = 0;
  let recall = 0;
  for (const [query, judged] of judgments) {
    const ranking = rankings.get(query) ?? [];
    ndcg += ndcgAt(ranking, judged, 10);
    recall += recallAt(ranking, judged, 100);
  }
  const n = judgments.size;
  return { queries: n, ndcg10: n ? ndcg / n : 0, recall100: n ? recall / n : 0 };
}

/** Chunk results to a document ranking: each document at the rank of its best chunk. */
export function documentRanking(externalIds: readonly (string | null)[]): string[] {
  const seen = new Set<string>();
  for (const id of externalIds) if (id !== null) seen.add(id);
  return [...seen];
}

/** The p-th percentile (0–100) by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}
