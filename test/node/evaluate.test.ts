import { describe, expect, it } from "vitest";
import { documentRanking, evaluate, ndcgAt, parseQrels, percentile, recallAt } from "../../bench/retrieval/evaluate.ts";

// Worked by hand: ranking d3 d1 d5 d2; judged d1 = 1, d2 = 2, d4 = 1, d6 = 0.
//   DCG@10  = 0/log2(2) + 1/log2(3) + 0/log2(4) + 2/log2(5)           = 0.630930 + 0.861353 = 1.492283
//   IDCG@10 = 2/log2(2) + 1/log2(3) + 1/log2(4)                        = 2 + 0.630930 + 0.5  = 3.130930
//   nDCG@10 = 1.492283 / 3.130930                                      = 0.476626
//   Recall@3 = |{d1}| / |{d1, d2, d4}| = 1/3; Recall@100 = |{d1, d2}| / 3 = 2/3
const judged = new Map([
  ["d1", 1],
  ["d2", 2],
  ["d4", 1],
  ["d6", 0],
]);
const ranking = ["d3", "d1", "d5", "d2"];

describe("bench/retrieval evaluator", () => {
  it("computes nDCG@k with linear gains and the ideal ranking of the judgments", () => {
    expect(ndcgAt(ranking, judged, 10)).toBeCloseTo(0.476626, 6);
    // @2: DCG = 1/log2(3); IDCG = 2 + 1/log2(3)
    expect(ndcgAt(ranking, judged, 2)).toBeCloseTo(0.63093 / 2.63093, 5);
    expect(ndcgAt(["d2", "d1", "d4"], judged, 10)).toBeCloseTo(1, 12);
    expect(ndcgAt(ranking, new Map([["d9", 0]]), 10)).toBe(0);
  });

  it("computes Recall@k over the relevant (grade > 0) documents", () => {
    expect(recallAt(ranking, judged, 3)).toBeCloseTo(1 / 3, 12);
    expect(recallAt(ranking, judged, 100)).toBeCloseTo(2 / 3, 12);
    expect(recallAt([], judged, 100)).toBe(0);
  });

  it("averages over every judged query; a query without results counts as 0", () => {
    const qrels = parseQrels("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq1\td4\t1\nq1\td6\t0\nq2\tx\t1\n");
    expect(qrels.get("q1")).toEqual(judged);
    const result = evaluate(new Map([["q1", ranking]]), qrels);
    expect(result.queries).toBe(2);
    expect(result.ndcg10).toBeCloseTo(0.476626 / 2, 6);
    expect(result.recall100).toBeCloseTo(2 / 3 / 2, 12);
  });

  it("ranks each document at its best chunk", () => {
    expect(documentRanking(["a", "b", "a", null, "c", "b"])).toEqual(["a", "b", "c"]);
  });

  it("takes percentiles by nearest rank", () => {
    const values = [5, 1, 4, 2, 3, 6, 7, 8, 9, 10];
    expect(percentile(values, 50)).toBe(5);
    expect(percentile(values, 95)).toBe(10);
    expect(percentile([42], 95)).toBe(42);
  });

  it("refuses a malformed qrels line", () => {
    expect(() => parseQrels("q1 d1 1")).toThrow(/line 1/);
  });
});
