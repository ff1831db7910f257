import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ingestDocument } from "../../src/kb/ingest.ts";
import { createVectorStore } from "../../src/kb/vectors/index.ts";
import type { VectorStore } from "../../src/kb/vectors/port.ts";
import { hybridSearch } from "../../src/rag/search.ts";
import { call, stack } from "./harness.ts";
import { config, db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { documentRow, upload } from "./kb-helpers.ts";

const hasVector = stack().databaseHasVector;
// The test database is shared across files: every search here is scoped to this file's source types.
const run = crypto.randomUUID().slice(0, 8);
const SOURCE = `search-${run}`;
const OTHER_SOURCE = `search-other-${run}`;
// Made-up words no other document holds, so document frequencies are known.
const RARE = `zorblaxin${run.replace(/\d/g, "")}`;

// Uploads queue nothing: each test indexes when it wants to (no race with the real consumer).
const noQueue = { KB_INGEST: { send: async () => {}, sendBatch: async () => {} } };

let admin: TestUser;
let user: TestUser;
const ids: Record<string, string> = {};

async function addDocument(name: string, text: string, fields: Record<string, string> = {}): Promise<string> {
  const res = await upload(
    admin.access,
    { bytes: `${text}\n\nRef ${run}.`, name: `${name}.txt`, type: "text/plain" },
    { title: name, source_type: SOURCE, ...fields },
    noQueue,
  );
  expect(res.status).toBe(202);
  await indexNow(res.body.id);
  return res.body.id;
}

async function indexNow(id: string, store = createVectorStore(config)) {
  const generation = ((await documentRow(id))?.activeGeneration ?? 0) + 1;
  return ingestDocument(env, config, { documentId: id, generation }, 1, { store });
}

async function search(body: Record<string, unknown>, token = user.access) {
  return call("POST", "/api/kb/search", { token, json: body });
}

/** A search scoped to this file's documents. */
async function scoped(query: string, extra: Record<string, unknown> = {}) {
  const { filters, ...rest } = extra as { filters?: Record<string, unknown> };
  const res = await search({ query, top_k: 20, ...rest, filters: { source_type: SOURCE, ...filters } });
  expect(res.status).toBe(200);
  return res.body;
}

const titles = (body: { results: { title: string }[] }) => body.results.map((r) => r.title);

beforeAll(async () => {
  admin = await signedInUser("admin");
  user = await signedInUser();
  ids.hypo = await addDocument(
    "hypoglycemia",
    "Hypoglycemia is low blood sugar. Symptoms of hypoglycemia include shakiness, sweating and confusion in the patient. Treat it with fast-acting glucose.",
    { tags: "endocrine" },
  );
  ids.insulin = await addDocument(
    "insulin",
    "Insulin therapy for type 1 diabetes: the patient adjusts insulin doses to blood sugar readings and meals.",
    { tags: "endocrine,drug" },
  );
  ids.hands = await addDocument(
    "hand hygiene",
    "Hand hygiene prevents infection. Wash hands with soap and water before and after each patient contact.",
    { tags: "infection" },
  );
  ids.common = await addDocument(
    "clinic visit",
    "The patient came to the clinic. The patient was seen by a nurse and the patient went home.",
  );
  ids.rare = await addDocument("rare finding", `A finding of ${RARE} was noted once in the ward records.`);
  ids.other = await addDocument(
    "hypoglycemia elsewhere",
    "Hypoglycemia in another collection: low blood sugar needs glucose.",
    { source_type: OTHER_SOURCE },
  );
}, 120_000);

describe("POST /api/kb/search: keyword retrieval (BM25)", () => {
  it("ranks the document with the exact terms first, with its keyword rank and score", async () => {
    const body = await scoped("shakiness and sweating", { mode: "keyword" });
    expect(body.mode).toBe("keyword");
    expect(titles(body)).toEqual(["hypoglycemia"]);
    const [top] = body.results;
    expect(top).toMatchObject({
      document_id: ids.hypo,
      title: "hypoglycemia",
      chunk_index: 0,
      page: null,
      heading_path: [],
      score: 1,
      retrievers: { keyword: { rank: 1, score: expect.any(Number) } },
    });
    expect(top.retrievers.vector).toBeUndefined();
    expect(top.snippet).toContain("shakiness, sweating");
    expect(body.retrievers.keyword.candidates).toBe(1);
    expect(body.retrievers.vector).toEqual({ candidates: 0, skipped: "not requested (mode keyword)" });
    expect(body.took_ms).toBeGreaterThanOrEqual(0);
  });

  it("weighs a rare term above a common one (idf), even against a higher term frequency", async () => {
    const body = await scoped(`patient ${RARE}`, { mode: "keyword" });
    expect(titles(body)[0]).toBe("rare finding");
    // "patient" three times in a short chunk still loses to one rare word.
    expect(titles(body)).toContain("clinic visit");
    const [rare, next] = body.results;
    expect(rare.retrievers.keyword.score).toBeGreaterThan(next.retrievers.keyword.score);
  });

  it("gives a query without searchable words an empty answer, not an error", async () => {
    const body = await scoped("the and of", { mode: "keyword" });
    expect(body.results).toEqual([]);
    expect(body.retrievers.keyword.skipped).toBe("the query has no searchable words");
  });
});

describe("POST /api/kb/search: filters, top_k and the score floor", () => {
  it("filters by source type (any of), tags (all of) and document ids", async () => {
    // Keyword mode: the vector arm ranks every chunk, so only keywords give exact sets.
    const both = await search({
      query: "hypoglycemia",
      mode: "keyword",
      filters: { source_type: [SOURCE, OTHER_SOURCE] },
    });
    expect(new Set(titles(both.body))).toEqual(new Set(["hypoglycemia", "hypoglycemia elsewhere"]));
    const other = await search({ query: "hypoglycemia", filters: { source_type: OTHER_SOURCE } });
    expect(titles(other.body)).toEqual(["hypoglycemia elsewhere"]);

    const endocrine = await scoped("patient", { mode: "keyword", filters: { tags: ["endocrine"] } });
    expect(new Set(titles(endocrine))).toEqual(new Set(["hypoglycemia", "insulin"]));
    const drug = await scoped("patient", { mode: "keyword", filters: { tags: ["endocrine", "drug"] } });
    expect(titles(drug)).toEqual(["insulin"]);

    const byId = await scoped("patient", { mode: "keyword", filters: { document_ids: [ids.hands, ids.common] } });
    expect(new Set(titles(byId))).toEqual(new Set(["hand hygiene", "clinic visit"]));
    const hybrid = await scoped("patient", { filters: { document_ids: [ids.hands, ids.common] } });
    expect(new Set(titles(hybrid))).toEqual(new Set(["hand hygiene", "clinic visit"]));
  });

  it("cuts at top_k and at the fused score floor", async () => {
    const all = await scoped("patient", { mode: "keyword" });
    expect(all.results.length).toBe(4);
    expect((await scoped("patient", { mode: "keyword", top_k: 2 })).results.length).toBe(2);
    const floored = await scoped("patient", { mode: "keyword", score_floor: 0.99 });
    expect(floored.results.map((r: { score: number }) => r.score)).toEqual([1]);
  });
});

describe.skipIf(!hasVector)("POST /api/kb/search: vector and hybrid retrieval", () => {
  it("finds a paraphrase (other spelling and inflection) by vector where keywords find nothing", async () => {
    const query = "hypoglycaemic shakey sweatiness";
    expect((await scoped(query, { mode: "keyword" })).results).toEqual([]);
    const body = await scoped(query, { mode: "vector" });
    expect(titles(body)[0]).toBe("hypoglycemia");
    expect(body.results[0].retrievers).toEqual({ vector: { rank: 1, score: expect.any(Number) } });
    expect(body.retrievers.keyword.skipped).toBe("not requested (mode vector)");
  });

  it("fuses both retrievers: a chunk both rank first scores 1 and shows both ranks", async () => {
    const body = await scoped("insulin doses for type 1 diabetes");
    expect(body.mode).toBe("hybrid");
    const [top] = body.results;
    expect(top.title).toBe("insulin");
    expect(top.retrievers).toEqual({
      keyword: { rank: 1, score: expect.any(Number) },
      vector: { rank: 1, score: expect.any(Number) },
    });
    expect(top.score).toBe(1);
    expect(body.retrievers.keyword.candidates).toBeGreaterThan(0);
    expect(body.retrievers.vector.candidates).toBeGreaterThan(0);
    expect(body.retrievers.vector.skipped).toBeUndefined();
    // The local embedder's default weight; RETRIEVAL_WEIGHT_VECTOR overrides it.
    expect(body.retrievers.keyword.weight).toBe(1);
    expect(body.retrievers.vector.weight).toBe(0.02);
    const even = await hybridSearch({ ...config, RETRIEVAL_WEIGHT_VECTOR: 1 }, env, {
      query: "insulin doses",
      filters: { sourceTypes: [SOURCE] },
    });
    expect(even.retrievers.vector.weight).toBe(1);
  });
});

describe("POST /api/kb/search: only what is indexed now", () => {
  const chunkIdsOf = async (id: string, generation: number) =>
    (
      (await db.execute(
        sql`select id from kb_chunks where document_id = ${id} and generation = ${generation}`,
      )) as unknown as { rows: { id: string }[] }
    ).rows.map((r) => r.id);

  it("returns only the active generation while a reindex is half done, then only the new one", async () => {
    const id = await addDocument("reindexed", `Bradycardia notes ${RARE}x. A slow heart rate is bradycardia.`);
    const real = createVectorStore(config);
    // Generation 2 gets its chunks, postings and vectors, then crashes before the flip.
    const crashing: VectorStore = {
      ...real,
      // Without pgvector the store would step aside before the write; pretend it is there so the crash comes after.
      ensureIndex: async (index) => (hasVector ? real.ensureIndex(index) : undefined),
      upsert: async (index, items) => {
        if (hasVector) await real.upsert(index, items);
        throw new Error("crash before the flip");
      },
    };
    await expect(indexNow(id, crashing)).rejects.toThrow("crash before the flip");
    const [first] = await chunkIdsOf(id, 1);
    const [second] = await chunkIdsOf(id, 2);
    expect(first && second).toBeTruthy();
    for (const mode of ["keyword", "vector", "hybrid"]) {
      const body = await scoped("bradycardia slow heart rate", { mode, filters: { document_ids: [id] } });
      if (mode !== "vector" || hasVector)
        expect(body.results.map((r: { chunk_id: string }) => r.chunk_id)).toEqual([first]);
    }
    // The retry rebuilds generation 2 (same derived chunk ids) and flips to it; generation 1 is gone.
    expect(await indexNow(id)).toBe("indexed");
    const after = await scoped("bradycardia slow heart rate", { filters: { document_ids: [id] } });
    expect(after.results.map((r: { chunk_id: string }) => r.chunk_id)).toEqual([second]);
    expect(await chunkIdsOf(id, 1)).toEqual([]);
  });

  it("never returns a deleted document", async () => {
    const word = `${RARE}gone`;
    const id = await addDocument("deleted", `Tachycardia ${word} is a fast heart rate.`);
    expect(titles(await scoped(`${word} tachycardia`, { mode: "keyword" }))).toEqual(["deleted"]);
    if (hasVector) expect(titles(await scoped(`${word} tachycardia`, { mode: "vector" }))[0]).toBe("deleted");
    expect((await call("DELETE", `/api/admin/kb/documents/${id}`, { token: admin.access })).status).toBe(204);
    for (const mode of ["keyword", "vector", "hybrid"]) {
      expect(titles(await scoped(`${word} tachycardia`, { mode }))).not.toContain("deleted");
    }
  });
});

describe("POST /api/kb/search: the vector arm steps aside instead of failing", () => {
  it.skipIf(hasVector)("without pgvector, searches by keyword and says why the vector arm was skipped", async () => {
    const body = await scoped("shakiness and sweating");
    expect(titles(body)).toEqual(["hypoglycemia"]);
    expect(body.results[0].retrievers).toEqual({ keyword: { rank: 1, score: expect.any(Number) } });
    expect(body.retrievers.vector).toEqual({ candidates: 0, skipped: "the vector store (pgvector) is unavailable" });
  });

  it("never embeds a query with a model other than the index's", async () => {
    const embed = vi.fn(async (texts: string[]) => texts.map(() => new Array(384).fill(0.1)));
    const found = await hybridSearch(
      config,
      env,
      { query: "shakiness", filters: { sourceTypes: [SOURCE] } },
      { embedder: { model: "other-model", dimensions: 384, embed } },
    );
    expect(embed).not.toHaveBeenCalled();
    expect(found.retrievers.vector.skipped).toMatch(
      /holds local-hash-v1 \(384 dimensions\) but the configured embedder is other-model \(384\); rebuild the index/,
    );
    expect(found.results.map((r) => r.title)).toEqual(["hypoglycemia"]);
  });

  it("uses a configured reranker's order", async () => {
    const found = await hybridSearch(
      config,
      env,
      { query: "patient", mode: "keyword", filters: { sourceTypes: [SOURCE] } },
      { reranker: { name: "reverse", rerank: async (_q, results) => [...results].reverse() } },
    );
    expect(found.results.map((r) => r.retrievers.keyword?.rank)).toEqual([4, 3, 2, 1]);
    expect(found.stageSeconds.rerank).toBeGreaterThanOrEqual(0);
    const unranked = await hybridSearch(config, env, {
      query: "patient",
      mode: "keyword",
      filters: { sourceTypes: [SOURCE] },
    });
    expect(unranked.stageSeconds.rerank).toBeUndefined();
  });
});

describe("POST /api/kb/search: access, bad input and metrics", () => {
  it("needs a signed-in caller (401), and any role may search", async () => {
    const anonymous = await call("POST", "/api/kb/search", { json: { query: "insulin" } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("content-type")).toBe("application/problem+json");
    expect((await search({ query: "insulin", filters: { source_type: SOURCE } })).status).toBe(200);
  });

  it.each([
    ["an empty query", { query: "   " }, "body.query"],
    ["no query", { top_k: 5 }, "body.query"],
    ["top_k 0", { query: "x", top_k: 0 }, "body.top_k"],
    ["top_k over 100", { query: "x", top_k: 101 }, "body.top_k"],
    ["an unknown mode", { query: "x", mode: "fuzzy" }, "body.mode"],
    ["a score floor over 1", { query: "x", score_floor: 2 }, "body.score_floor"],
    [
      "a document id that is not a uuid",
      { query: "x", filters: { document_ids: ["nope"] } },
      "body.filters.document_ids.0",
    ],
    ["an unknown filter", { query: "x", filters: { sourcetype: "a" } }, "body.filters"],
  ])("%s → 422 naming %s", async (_name, body, field) => {
    const res = await search(body);
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("VALIDATION_FAILED");
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });

  it("counts searches by mode and outcome, and times each stage", async () => {
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    await scoped("insulin");
    await scoped(`${RARE}nothing`, { mode: "keyword" });
    const seen = writes.mock.calls.map(([p]) => {
      const [name, , ...labels] = p?.blobs ?? [];
      return [name, ...labels].join(":");
    });
    writes.mockRestore();
    expect(seen).toEqual(
      expect.arrayContaining([
        hasVector ? "kb_search_total:hybrid:ok" : "kb_search_total:hybrid:degraded",
        "kb_search_total:keyword:empty",
        "kb_search_duration_seconds:keyword",
        "kb_search_duration_seconds:fuse",
        "kb_search_duration_seconds:load",
        ...(hasVector ? ["kb_search_duration_seconds:embed", "kb_search_duration_seconds:vector"] : []),
      ]),
    );
  });
});
