import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.ts";
import { LOCAL_MODEL } from "../../src/kb/embed/local.ts";
import { vectorWeight } from "../../src/rag/vector.ts";

const base = {
  DATABASE_URL: "postgres://u:p@db.example.com/app",
  JWT_SIGNING_KEYS: "k1:0123456789abcdef0123456789abcdef",
};

describe("retrieval configuration", () => {
  it("defaults to BM25 k1 0.9 and b 0.4, RRF k 60, top 10 of 100 candidates per retriever", () => {
    const result = parseConfig(base);
    expect(result.ok && result.config).toMatchObject({
      RETRIEVAL_BM25_K1: 0.9,
      RETRIEVAL_BM25_B: 0.4,
      RETRIEVAL_RRF_K: 60,
      RETRIEVAL_WEIGHT_KEYWORD: 1,
      RETRIEVAL_TOP_K: 10,
      RETRIEVAL_CANDIDATES: 100,
    });
    // Unset: the weight follows the index's embedding model (vectorWeight).
    expect(result.ok && result.config.RETRIEVAL_WEIGHT_VECTOR).toBeUndefined();
  });

  it.each([
    ["RETRIEVAL_BM25_B", "1.5"],
    ["RETRIEVAL_BM25_K1", "-1"],
    ["RETRIEVAL_TOP_K", "101"],
    ["RETRIEVAL_TOP_K", "2.5"],
    ["RETRIEVAL_WEIGHT_VECTOR", "-0.1"],
    ["RETRIEVAL_CANDIDATES", "0"],
  ])("rejects %s=%s naming it", (variable, value) => {
    const result = parseConfig({ ...base, [variable]: value });
    expect(result.ok ? [] : result.issues.map((i) => i.variable)).toEqual([variable]);
  });

  it("weighs the vector arm 1 for embedding models, 0.02 for the local hashed embedder, unless configured", () => {
    expect(vectorWeight(undefined, "text-embedding-3-small")).toBe(1);
    expect(vectorWeight(undefined, LOCAL_MODEL)).toBe(0.02);
    expect(vectorWeight(0.5, LOCAL_MODEL)).toBe(0.5);
    expect(vectorWeight(0, "text-embedding-3-small")).toBe(0);
  });
});
