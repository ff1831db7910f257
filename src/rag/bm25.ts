import { sql } from "drizzle-orm";
import { type Database, queryRows } from "../db/client.ts";
import { analyze } from "../kb/terms.ts";
import { activeChunks, documentConditions, type SearchFilters } from "./filters.ts";
import type { RankedHit } from "./fuse.ts";

interface Bm25Parameters {
  k1: number;
  b: number;
}

/** A query's distinct index terms and how often each occurs (a repeated word weighs more, as in Lucene). */
export function queryTerms(query: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const term of analyze(query)) counts.set(term, (counts.get(term) ?? 0) + 1);
  return counts;
}

/**
 * Keyword retrieval scored as BM25 in one SQL statement over kb_postings:
 *   score(c) = Σ_t qtf(t) · idf(t) · tf(t,c)·(k1+1) / (tf(t,c) + k1·(1 − b + b·len(c)/avglen))
 *   idf(t)   = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
 * N, avglen and df count the chunks of active generations only, across the whole knowledge base
 * (corpus statistics); the filters narrow the candidates, not the statistics.
 */
export async function keywordSearch(
  db: Database,
  terms: Map<string, number>,
  options: { limit: number; filters: SearchFilters; bm25: Bm25Parameters },
): Promise<RankedHit[]> {
  if (terms.size === 0 || options.limit < 1) return [];
  const { k1, b } = options.bm25;
  const words = sql.param([...terms.keys()]);
  const rows = await queryRows<{ chunk_id: string; document_id: string; score: number | string }>(
    db,
    // Every step is materialized so the plan cannot degrade: inlined, the planner either re-ran the corpus
    // aggregate per posting (with statistics) or scanned all postings (without, as in PGlite).
    sql`with q as (
          select term, qtf from unnest(${words}::text[], ${sql.param([...terms.values()])}::int[]) as t(term, qtf)
        ),
        live as materialized (
          select c.id, c.document_id, c.term_count, (true ${documentConditions(options.filters)}) as eligible
          from ${activeChunks}
        ),
        corpus as materialized (
          select count(*)::float8 as n, greatest(avg(term_count), 1)::float8 as avglen from live
        ),
        hits as materialized (
          select term, chunk_id, tf::float8 as tf from kb_postings where term = any(${words}::text[])
        ),
        matches as materialized (
          select h.term, h.chunk_id, h.tf, l.document_id, l.term_count, l.eligible
          from hits h join live l on l.id = h.chunk_id
        ),
        weights as (
          select q.term, q.qtf * ln(1 + (corpus.n - df.df + 0.5) / (df.df + 0.5)) as w
          from q
            join (select term, count(*)::float8 as df from matches group by term) df on df.term = q.term
            cross join corpus
        )
        select m.chunk_id, m.document_id,
          sum(weights.w * m.tf * (${k1}::float8 + 1)
              / (m.tf + ${k1}::float8 * (1 - ${b}::float8 + ${b}::float8 * m.term_count / (select avglen from corpus)))) as score
        from matches m join weights on weights.term = m.term
        where m.eligible
        group by m.chunk_id, m.document_id
        order by score desc, m.chunk_id
        limit ${Math.floor(options.limit)}`,
  );
  return rows.map((r) => ({ chunkId: r.chunk_id, documentId: r.document_id, score: Number(r.score) }));
}
