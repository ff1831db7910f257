// npx node bench/retrieval/sweep.ts [BEIR folder]: the tuning grid behind docs/benchmarks.md, in memory and in
// about a minute instead of a server run per setting. It reuses the app's analyzer, chunker, local embedder
// and fusion; only BM25 is re-implemented here (the same formula as src/rag/bm25.ts computes in SQL). The
// route reproduced its default row within 0.001: tune here, then confirm with npm run bench:retrieval.
import { join, resolve } from "node:path";
import { chunkDocument } from "../../src/kb/chunk.ts";
import { embedText } from "../../src/kb/embed/local.ts";
import { normaliseText } from "../../src/kb/extract/normalise.ts";
import { analyze } from "../../src/kb/terms.ts";
import { fuseRankings, type RankedHit } from "../../src/rag/fuse.ts";
import { readCorpus, readJudgedQueries } from "./dataset.ts";
import { documentRanking, evaluate } from "./evaluate.ts";

const dir = resolve(process.argv[2] ?? join(import.meta.dirname, "..", "..", "..", "shared", "data", "scifact"));
const CHUNK_SIZES = [1_000, 4_000]; // the default, and whole abstracts (99 % of SciFact fits)
const BM25 = [
  [0.9, 0.4],
  [1.2, 0.75],
  [1.2, 0.4],
] as const;
const VECTOR_WEIGHTS = [1, 0.1, 0.05, 0.02];
const CANDIDATES = 100;
const RRF_K = 60;

interface IndexedChunk {
  documentId: string;
  tf: Map<string, number>;
  length: number;
  vector: Float64Array;
}

interface MemoryIndex {
  chunks: IndexedChunk[];
  /** term → positions of the chunks holding it */
  postings: Map<string, number[]>;
  avglen: number;
}

const corpus = await readCorpus(dir);
const { queries, judgments } = await readJudgedQueries(dir, "train");
const queryTerms = queries.map((q) => counts(analyze(q.text)));
const queryVectors = queries.map((q) => embedText(q.text));
console.log(`${corpus.length} documents, ${queries.length} queries; nDCG@10 / Recall@100`);
console.log("| chunk size | k1 | b | keyword | vector | hybrid (vector weight → nDCG@10) |");
console.log("|---|---|---|---|---|---|");

for (const size of CHUNK_SIZES) {
  const index = await indexCorpus(size);
  const vectorHits = queryVectors.map((v) => nearest(index.chunks, v));
  for (const [k1, b] of BM25) {
    const keywordHits = queryTerms.map((terms) => bm25(index, terms, k1, b));
    const score = (lists: RankedHit[][][], weights: number[]) =>
      evaluate(
        new Map(
          queries.map((q, i) => [
            q.id,
            documentRanking(
              fuseRankings(
                lists.map((l, r) => ({ retriever: String(r), weight: weights[r] as number, hits: l[i] ?? [] })),
                RRF_K,
              ).map((h) => h.documentId),
            ),
          ]),
        ),
        judgments,
      );
    const keyword = score([keywordHits], [1]);
    const vector = score([vectorHits], [1]);
    const hybrid = VECTOR_WEIGHTS.map((w) => `${w} → ${score([keywordHits, vectorHits], [1, w]).ndcg10.toFixed(4)}`);
    const fmt = (e: { ndcg10: number; recall100: number }) => `${e.ndcg10.toFixed(4)} / ${e.recall100.toFixed(4)}`;
    console.log(
      `| ${size} (${index.chunks.length} chunks) | ${k1} | ${b} | ${fmt(keyword)} | ${fmt(vector)} | ${hybrid.join(", ")} |`,
    );
  }
}

function counts(terms: string[]): Map<string, number> {
  const map = new Map<string, number>();
  for (const t of terms) map.set(t, (map.get(t) ?? 0) + 1);
  return map;
}

/** What ingestion stores per chunk: extracted as plain text, chunked, analyzed, embedded. */
async function indexCorpus(size: number): Promise<MemoryIndex> {
  const chunks: IndexedChunk[] = [];
  const postings = new Map<string, number[]>();
  for (const record of corpus) {
    // What extraction makes of an imported text: one normalised block.
    const blocks = [{ text: normaliseText(record.text, { dehyphenate: false }), headingPath: [] }];
    for (const piece of chunkDocument(blocks, { size, overlap: 150 })) {
      const terms = analyze(piece.text);
      const tf = counts(terms);
      for (const term of tf.keys()) postings.set(term, [...(postings.get(term) ?? []), chunks.length]);
      chunks.push({
        documentId: record.external_id,
        tf,
        length: terms.length,
        vector: Float64Array.from(embedText(piece.text)),
      });
    }
  }
  return { chunks, postings, avglen: chunks.reduce((sum, c) => sum + c.length, 0) / chunks.length };
}

function bm25(index: MemoryIndex, terms: Map<string, number>, k1: number, b: number): RankedHit[] {
  const scores = new Map<number, number>();
  for (const [term, qtf] of terms) {
    const holders = index.postings.get(term) ?? [];
    const idf = Math.log(1 + (index.chunks.length - holders.length + 0.5) / (holders.length + 0.5));
    for (const i of holders) {
      const chunk = index.chunks[i] as IndexedChunk;
      const tf = chunk.tf.get(term) as number;
      const part = (qtf * idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * chunk.length) / index.avglen));
      scores.set(i, (scores.get(i) ?? 0) + part);
    }
  }
  return top(scores, index.chunks);
}

function nearest(chunks: IndexedChunk[], query: number[]): RankedHit[] {
  const scores = new Map<number, number>();
  for (const [i, chunk] of chunks.entries()) {
    let dot = 0;
    for (let j = 0; j < query.length; j++) dot += (chunk.vector[j] as number) * (query[j] as number);
    scores.set(i, dot);
  }
  return top(scores, chunks);
}

function top(scores: Map<number, number>, chunks: IndexedChunk[]): RankedHit[] {
  return [...scores]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, CANDIDATES)
    .map(([i, score]) => ({ chunkId: String(i), documentId: (chunks[i] as IndexedChunk).documentId, score }));
}
