import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { createDb } from "../../src/db/client.ts";
import { chunks, documents } from "../../src/db/schema/kb.ts";
import { loadConfig } from "../../src/env.ts";
import { isTransient, UpstreamError } from "../../src/errors.ts";
import { createVectorStore } from "../../src/kb/vectors/index.ts";
import { pgvectorStore } from "../../src/kb/vectors/pgvector.ts";
import type { IndexSpec, VectorStore } from "../../src/kb/vectors/port.ts";
import { qdrantStore } from "../../src/kb/vectors/qdrant.ts";
import { runInWorkContext } from "../../src/observability/context.ts";

const loaded = loadConfig(env);
if (!loaded.ok) throw new Error(`test environment is invalid: ${JSON.stringify(loaded.issues)}`);
const config = loaded.config;
const stack = inject("stack");
const qdrantConfig = { ...config, QDRANT_URL: stack.qdrantUrl, QDRANT_API_KEY: stack.qdrantApiKey };

/** A fresh index per test, so tests sharing the database or the stand-in never see each other's vectors. */
const newIndex = (dimensions = 4): IndexSpec => ({
  name: `t${crypto.randomUUID().slice(0, 8)}`,
  model: "test-model",
  dimensions,
});

/** Real document and chunk rows: kb_vectors references both. */
async function seedDocument(chunkCount: number): Promise<{ documentId: string; chunkIds: string[] }> {
  const db = createDb(config);
  const [document] = await db
    .insert(documents)
    .values({ title: "vector test", mimeType: "text/plain", byteSize: 1, sha256: crypto.randomUUID(), r2Key: "test" })
    .returning({ id: documents.id });
  const documentId = document?.id as string;
  const chunkIds = Array.from({ length: chunkCount }, () => crypto.randomUUID());
  await db.insert(chunks).values(
    chunkIds.map((id, i) => ({
      id,
      documentId,
      generation: 1,
      chunkIndex: i,
      text: `chunk ${i}`,
      charStart: 0,
      charEnd: 7,
      tokenCount: 2,
      termCount: 1,
    })),
  );
  return { documentId, chunkIds };
}

const rejection = (work: Promise<unknown>) =>
  work.then(
    () => undefined,
    (error: unknown) => error as Error & { code?: string },
  );

/** The behaviour every vector store must have, run against each adapter. */
function conformance(name: string, create: () => VectorStore, skipReason?: string) {
  let store: VectorStore | undefined;
  // One client per suite: the Qdrant client warns on every construction with an api-key over http.
  const make = () => {
    store ??= create();
    return store;
  };
  describe.skipIf(Boolean(skipReason))(`vector store: ${name}${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
    it("ensureIndex is idempotent, also when two workers race", async () => {
      const store = make();
      const index = newIndex();
      await Promise.all([store.ensureIndex(index), store.ensureIndex(index)]);
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(1);
      await store.upsert(index, [{ chunkId: chunkIds[0] as string, documentId, vector: [1, 0, 0, 0] }]);
      await store.ensureIndex(index);
      expect(await store.query(index, [1, 0, 0, 0], { topK: 5 })).toHaveLength(1);
    });

    it("returns the nearest first, scored by cosine similarity", async () => {
      const store = make();
      const index = newIndex();
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(4);
      const [same, near, orthogonal, opposite] = chunkIds as [string, string, string, string];
      await store.upsert(index, [
        { chunkId: orthogonal, documentId, vector: [0, 3, 0, 0] },
        { chunkId: opposite, documentId, vector: [-2, 0, 0, 0] },
        { chunkId: same, documentId, vector: [5, 0, 0, 0] },
        { chunkId: near, documentId, vector: [1, 1, 0, 0] },
      ]);
      const hits = await store.query(index, [1, 0, 0, 0], { topK: 10 });
      expect(hits.map((h) => h.chunkId)).toEqual([same, near, orthogonal, opposite]);
      expect(hits.every((h) => h.documentId === documentId)).toBe(true);
      const scores = hits.map((h) => h.score);
      [1, Math.SQRT1_2, 0, -1].forEach((expected, i) => {
        expect(scores[i]).toBeCloseTo(expected, 5);
      });
    });

    it("replaces a vector upserted again under the same chunk id", async () => {
      const store = make();
      const index = newIndex();
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(2);
      const [a, b] = chunkIds as [string, string];
      await store.upsert(index, [
        { chunkId: a, documentId, vector: [1, 0, 0, 0] },
        { chunkId: b, documentId, vector: [0, 1, 0, 0] },
      ]);
      await store.upsert(index, [{ chunkId: a, documentId, vector: [0, 0, 1, 0] }]);
      const hits = await store.query(index, [0, 0, 1, 0], { topK: 10 });
      expect(hits.map((h) => h.chunkId)).toEqual([a, b]);
      expect(hits[0]?.score).toBeCloseTo(1, 5);
    });

    it("keeps to the given documents", async () => {
      const store = make();
      const index = newIndex();
      await store.ensureIndex(index);
      const first = await seedDocument(2);
      const second = await seedDocument(2);
      const third = await seedDocument(1);
      for (const doc of [first, second, third]) {
        await store.upsert(
          index,
          doc.chunkIds.map((chunkId, i) => ({ chunkId, documentId: doc.documentId, vector: [1, i, 0, 0] })),
        );
      }
      const hits = await store.query(index, [1, 0, 0, 0], {
        topK: 10,
        documentIds: [second.documentId, third.documentId],
      });
      expect(new Set(hits.map((h) => h.chunkId))).toEqual(new Set([...second.chunkIds, ...third.chunkIds]));
      expect(await store.query(index, [1, 0, 0, 0], { topK: 10, documentIds: [] })).toEqual([]);
    });

    it("deletes chunks by id", async () => {
      const store = make();
      const index = newIndex();
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(3);
      await store.upsert(
        index,
        chunkIds.map((chunkId) => ({ chunkId, documentId, vector: [1, 1, 1, 1] })),
      );
      await store.deleteChunks(index, chunkIds.slice(0, 2));
      await store.deleteChunks(index, []);
      const hits = await store.query(index, [1, 1, 1, 1], { topK: 10 });
      expect(hits.map((h) => h.chunkId)).toEqual([chunkIds[2]]);
    });

    it("deletes every vector of a document", async () => {
      const store = make();
      const index = newIndex();
      await store.ensureIndex(index);
      const gone = await seedDocument(3);
      const kept = await seedDocument(1);
      for (const doc of [gone, kept]) {
        await store.upsert(
          index,
          doc.chunkIds.map((chunkId) => ({ chunkId, documentId: doc.documentId, vector: [0, 1, 0, 1] })),
        );
      }
      await store.deleteDocument(index, gone.documentId);
      const hits = await store.query(index, [0, 1, 0, 1], { topK: 10 });
      expect(hits.map((h) => h.chunkId)).toEqual(kept.chunkIds);
    });

    it("drops a whole index, and only that index", async () => {
      const store = make();
      const dropped = newIndex();
      const other = newIndex();
      await store.ensureIndex(dropped);
      await store.ensureIndex(other);
      for (const index of [dropped, other]) {
        const doc = await seedDocument(2);
        await store.upsert(
          index,
          doc.chunkIds.map((chunkId) => ({ chunkId, documentId: doc.documentId, vector: [1, 0, 0, 1] })),
        );
      }
      expect(await store.query(dropped, [1, 0, 0, 1], { topK: 10 })).toHaveLength(2);
      await store.dropIndex(dropped);
      expect(await store.query(dropped, [1, 0, 0, 1], { topK: 10 })).toEqual([]);
      expect(await store.query(other, [1, 0, 0, 1], { topK: 10 })).toHaveLength(2);
      await store.dropIndex(dropped);
    });

    it("returns at most topK hits", async () => {
      const store = make();
      const index = newIndex();
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(5);
      await store.upsert(
        index,
        chunkIds.map((chunkId, i) => ({ chunkId, documentId, vector: [1, i, 0, 0] })),
      );
      const hits = await store.query(index, [1, 0, 0, 0], { topK: 2 });
      expect(hits.map((h) => h.chunkId)).toEqual(chunkIds.slice(0, 2));
    });

    it("rejects vectors of the wrong dimension with a clear error", async () => {
      const store = make();
      const index = newIndex(4);
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(1);
      const upsert = await rejection(
        store.upsert(index, [{ chunkId: chunkIds[0] as string, documentId, vector: [1, 0, 0] }]),
      );
      expect(upsert?.code).toBe("BAD_ENVIRONMENT");
      expect(upsert?.message).toMatch(/is 4-dimensional \(test-model\) but got a 3-dimensional vector/);
      const query = await rejection(store.query(index, [1, 0], { topK: 1 }));
      expect(query?.message).toMatch(/but got a 2-dimensional vector/);
    });

    it("refuses to reuse an index name with another dimension", async () => {
      const store = make();
      const index = newIndex(4);
      await store.ensureIndex(index);
      const { documentId, chunkIds } = await seedDocument(1);
      await store.upsert(index, [{ chunkId: chunkIds[0] as string, documentId, vector: [1, 0, 0, 0] }]);
      const error = await rejection(store.ensureIndex({ ...index, dimensions: 8 }));
      expect(error?.code).toBe("BAD_ENVIRONMENT");
      expect(error?.message).toMatch(/already holds 4-dimensional vectors, not 8/);
    });

    it("keeps indexes apart, even of different dimensions", async () => {
      const store = make();
      const small = newIndex(3);
      const large = newIndex(4);
      await store.ensureIndex(small);
      await store.ensureIndex(large);
      const { documentId, chunkIds } = await seedDocument(2);
      const [inSmall, inLarge] = chunkIds as [string, string];
      await store.upsert(small, [{ chunkId: inSmall, documentId, vector: [1, 0, 0] }]);
      await store.upsert(large, [{ chunkId: inLarge, documentId, vector: [1, 0, 0, 0] }]);
      expect((await store.query(small, [1, 0, 0], { topK: 10 })).map((h) => h.chunkId)).toEqual([inSmall]);
      expect((await store.query(large, [1, 0, 0, 0], { topK: 10 })).map((h) => h.chunkId)).toEqual([inLarge]);
    });

    it("finds nothing in an index without vectors, and deleting from it is a no-op", async () => {
      const store = make();
      const index = newIndex();
      await store.deleteDocument(index, crypto.randomUUID());
      await store.deleteChunks(index, [crypto.randomUUID()]);
      expect(await store.query(index, [1, 0, 0, 0], { topK: 3 })).toEqual([]);
    });
  });
}

conformance(
  "pgvector",
  () => pgvectorStore(createDb(config)),
  stack.databaseHasVector ? undefined : "this Postgres has no pgvector extension",
);
conformance("qdrant (recorded-contract stand-in)", () => qdrantStore(qdrantConfig));

describe("createVectorStore", () => {
  it("picks Qdrant when QDRANT_URL is set, else pgvector", () => {
    expect(createVectorStore(qdrantConfig).backend).toBe("qdrant");
    expect(createVectorStore({ ...config, QDRANT_URL: undefined }).backend).toBe("pgvector");
  });
});

describe.skipIf(stack.databaseHasVector)("pgvector store without the extension", () => {
  it("says so instead of failing on a missing table", async () => {
    const error = await rejection(pgvectorStore(createDb(config)).ensureIndex(newIndex()));
    expect(error?.code).toBe("BAD_ENVIRONMENT");
    expect(error?.message).toMatch(/pgvector is not available in this database.*QDRANT_URL/);
  });
});

describe("qdrant store: errors and trace headers", () => {
  it("passes Qdrant's own refusal on as a permanent error", async () => {
    const store = qdrantStore(qdrantConfig);
    const index = newIndex(4);
    await store.ensureIndex(index);
    const claimed = { ...index, dimensions: 8 };
    const error = await rejection(
      store.upsert(claimed, [
        { chunkId: crypto.randomUUID(), documentId: crypto.randomUUID(), vector: new Array(8).fill(1) },
      ]),
    );
    expect(error).toBeInstanceOf(UpstreamError);
    expect(error?.message).toMatch(/Qdrant refused to upsert points \(400\): .*expected dim: 4, got 8/);
    expect(isTransient(error)).toBe(false);
  });

  it("treats a wrong API key as permanent", async () => {
    const store = qdrantStore({ ...qdrantConfig, QDRANT_API_KEY: "wrong-key" });
    const error = await rejection(store.ensureIndex(newIndex()));
    expect(error?.message).toMatch(/Qdrant refused the API key \(401\): check QDRANT_API_KEY/);
    expect(isTransient(error)).toBe(false);
  });

  it("treats an unreachable Qdrant as transient", async () => {
    const store = qdrantStore({ ...qdrantConfig, QDRANT_URL: "http://127.0.0.1:9" });
    const error = await rejection(store.ensureIndex(newIndex()));
    expect(error?.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(error?.message).toMatch(/Qdrant could not be reached/);
    expect(isTransient(error)).toBe(true);
  });

  it("sends the current trace with each request", async () => {
    const store = qdrantStore(qdrantConfig);
    const index = newIndex();
    const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true };
    await runInWorkContext({ requestId: "qdrant-trace-test", trace }, async () => {
      await store.ensureIndex(index);
      await store.query(index, [1, 0, 0, 0], { topK: 1 });
    });
    const res = await fetch(`${stack.qdrantUrl}/__requests`);
    const requests = (await res.json()) as { path: string; headers: Record<string, string> }[];
    const ours = requests.filter((r) => r.path.startsWith(`/collections/kb_${index.name}`));
    expect(ours.map((r) => r.path)).toContain(`/collections/kb_${index.name}/points/query`);
    for (const r of ours) {
      expect(r.headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
      expect(r.headers["x-request-id"]).toBe("qdrant-trace-test");
    }
  });
});
