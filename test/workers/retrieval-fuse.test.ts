import { describe, expect, it } from "vitest";
import { fuseRankings, type RankedList } from "../../src/rag/fuse.ts";

const hits = (...ids: string[]) => ids.map((id, i) => ({ chunkId: id, documentId: `doc-${id}`, score: 10 - i }));
const list = (retriever: string, ids: string[], weight = 1): RankedList => ({ retriever, weight, hits: hits(...ids) });
const rrf = (...terms: [weight: number, rank: number][]) => terms.reduce((s, [w, r]) => s + w / (60 + r), 0);

describe("fuseRankings", () => {
  it.each<[string, RankedList[], number, [string, number][]]>([
    ["no lists", [], 60, []],
    [
      "one list keeps its order; first place scores 1",
      [list("kw", ["a", "b"])],
      60,
      [
        ["a", 1],
        ["b", rrf([1, 2]) / rrf([1, 1])],
      ],
    ],
    [
      "a chunk found by both beats chunks found by one",
      [list("kw", ["a", "b"]), list("vec", ["c", "b"])],
      60,
      [
        ["b", rrf([1, 2], [1, 2]) / rrf([1, 1], [1, 1])],
        ["a", rrf([1, 1]) / rrf([1, 1], [1, 1])],
        ["c", rrf([1, 1]) / rrf([1, 1], [1, 1])],
      ],
    ],
    [
      "weights decide between two first places",
      [list("kw", ["a"], 1), list("vec", ["b"], 2)],
      60,
      [
        ["b", 2 / 3],
        ["a", 1 / 3],
      ],
    ],
    [
      "a smaller k favours the top ranks: rank 1 in one list beats rank 3 in both",
      [list("kw", ["a", "x", "b"]), list("vec", ["y", "z", "b"])],
      0,
      [
        ["a", 1 / 2],
        ["y", 1 / 2],
        ["b", (1 / 3 + 1 / 3) / 2],
        ["x", 1 / 2 / 2],
        ["z", 1 / 2 / 2],
      ],
    ],
    [
      "a list naming a chunk twice keeps its first rank",
      [list("kw", ["a", "b", "a"])],
      60,
      [
        ["a", 1],
        ["b", rrf([1, 2]) / rrf([1, 1])],
      ],
    ],
    [
      "zero weights score 0 but keep rank order",
      [list("kw", ["a", "b"], 0)],
      60,
      [
        ["a", 0],
        ["b", 0],
      ],
    ],
  ])("%s", (_name, lists, k, expected) => {
    const fused = fuseRankings(lists, k);
    expect(fused.map((h) => h.chunkId)).toEqual(expected.map(([id]) => id));
    for (const [i, hit] of fused.entries()) expect(hit.score).toBeCloseTo(expected[i]?.[1] as number, 12);
  });

  it("reports each retriever's rank and own score, and the document", () => {
    const [b] = fuseRankings([list("kw", ["a", "b"]), list("vec", ["b"])], 60);
    expect(b).toEqual({
      chunkId: "b",
      documentId: "doc-b",
      score: expect.any(Number),
      retrievers: { kw: { rank: 2, score: 9 }, vec: { rank: 1, score: 10 } },
    });
  });

  it("breaks ties by the best single rank, then by chunk id, so results are stable", () => {
    // m and n have the same ranks, swapped; z and y are each first in one list.
    const fused = fuseRankings([list("kw", ["m", "n"]), list("vec", ["n", "m"])], 60);
    expect(fused.map((h) => h.chunkId)).toEqual(["m", "n"]);
    const single = fuseRankings([list("kw", ["z"]), list("vec", ["y"])], 60);
    expect(single.map((h) => h.chunkId)).toEqual(["y", "z"]);
  });
});
