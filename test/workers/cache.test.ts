import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { MemoryTier } from "../../src/cache/memory.ts";
import { type CacheOptions, createCache, newIsolateCache, storageKey } from "../../src/cache/multilevel.ts";
import { localEmbedder } from "../../src/kb/embed/local.ts";
import { createVectorStore } from "../../src/kb/vectors/index.ts";
import type { VectorStore } from "../../src/kb/vectors/port.ts";
import { hybridSearch } from "../../src/rag/search.ts";
import { cachedEmbedder } from "../../src/rag/search-cache.ts";
import { sleep } from "../../src/sleep.ts";
import { call, stack } from "./harness.ts";
import { config, signedInUser, type TestUser } from "./identity-helpers.ts";
import { ingestNow, upload } from "./kb-helpers.ts";

const hasRedis = stack().redis;
const hasVector = stack().databaseHasVector;
// Redis outlives test runs: every namespace and document here is unique to this run.
const run = crypto.randomUUID().slice(0, 8);
let counter = 0;
const freshNamespace = () => `test-${run}-${counter++}`;

/** The metric events (name:label values) written while work ran. */
async function recorded<T>(work: () => Promise<T>): Promise<{ result: T; seen: string[] }> {
  const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
  try {
    const result = await work();
    const seen = writes.mock.calls.map(([point]) => {
      const [name, , ...labels] = point?.blobs ?? [];
      return [name, ...labels].join(":");
    });
    return { result, seen };
  } finally {
    writes.mockRestore();
  }
}

/** A cache in an isolate of its own (fresh memory, no loads in flight), as a new isolate would start. */
function isolatedCache<T>(namespace: string, options: Partial<CacheOptions<T>> = {}, cacheConfig = config) {
  return createCache<T>(cacheConfig, env, { namespace, ttlSeconds: 60, isolate: newIsolateCache(100), ...options });
}

describe("isolate memory (L1)", () => {
  it("evicts the least recently used entry beyond its bound", () => {
    const memory = new MemoryTier(2);
    memory.set("a", "1", 1_000, 0);
    memory.set("b", "2", 1_000, 0);
    expect(memory.get("a", 1)).toBe("1"); // a is now the most recently used
    memory.set("c", "3", 1_000, 2);
    expect(memory.size).toBe(2);
    expect(memory.get("b", 3)).toBeUndefined();
    expect([memory.get("a", 3), memory.get("c", 3)]).toEqual(["1", "3"]);
  });

  it("forgets an entry at its expiry", () => {
    const memory = new MemoryTier(10);
    memory.set("a", "1", 1_000, 5_000);
    expect(memory.get("a", 5_999)).toBe("1");
    expect(memory.get("a", 6_000)).toBeUndefined();
    expect(memory.size).toBe(0);
  });
});

describe("keys", () => {
  it("keeps short keys readable and hashes long ones to a bounded length", async () => {
    expect(await storageKey("search", "short")).toBe("va:cache:search:short");
    const long = await storageKey("search", "x".repeat(5_000));
    expect(long).toMatch(/^va:cache:search:sha256:[0-9a-f]{64}$/);
    expect(await storageKey("search", "x".repeat(5_000))).toBe(long);
    expect(await storageKey("search", "x".repeat(5_001))).not.toBe(long);
  });
});

describe("multi-level cache", () => {
  it("loads a miss, then serves it from isolate memory, counting each tier", async () => {
    const namespace = freshNamespace();
    const cache = isolatedCache<{ n: number }>(namespace);
    const loader = vi.fn(async () => ({ n: 1 }));
    const first = await recorded(() => cache.lookup("k", loader));
    expect(first.result).toEqual({ value: { n: 1 }, from: "loader" });
    expect(first.seen).toEqual([
      `cache_lookups_total:${namespace}:l1:miss`,
      ...(hasRedis ? [`cache_lookups_total:${namespace}:l2:miss`] : []),
      `cache_loads_total:${namespace}:ok`,
    ]);
    const second = await recorded(() => cache.lookup("k", loader));
    expect(second.result).toEqual({ value: { n: 1 }, from: "l1" });
    expect(second.seen).toEqual([`cache_lookups_total:${namespace}:l1:hit`]);
    expect(loader).toHaveBeenCalledTimes(1);
    expect(await cache.getOrLoad("k", loader)).toEqual({ n: 1 });
  });

  it("hands out copies: a caller mutating its value does not change the cached one", async () => {
    const cache = isolatedCache<{ list: number[] }>(freshNamespace());
    await cache.getOrLoad("k", async () => ({ list: [1] }));
    (await cache.getOrLoad("k", async () => ({ list: [] }))).list.push(2);
    expect(await cache.getOrLoad("k", async () => ({ list: [] }))).toEqual({ list: [1] });
  });

  it.skipIf(!hasRedis)("serves another isolate from Redis (L2), then from its own memory", async () => {
    const namespace = freshNamespace();
    await isolatedCache<string>(namespace).getOrLoad("k", async () => "from A");
    const other = isolatedCache<string>(namespace);
    const loader = vi.fn(async () => "from B");
    const first = await recorded(() => other.lookup("k", loader));
    expect(first.result).toEqual({ value: "from A", from: "l2" });
    expect(first.seen).toEqual([`cache_lookups_total:${namespace}:l1:miss`, `cache_lookups_total:${namespace}:l2:hit`]);
    expect(await other.lookup("k", loader)).toEqual({ value: "from A", from: "l1" });
    expect(loader).not.toHaveBeenCalled();
  });

  it("expires entries after their TTL, in memory and in Redis", async () => {
    const namespace = freshNamespace();
    const cache = isolatedCache<number>(namespace, { ttlSeconds: 1 });
    const loader = vi.fn(async () => loader.mock.calls.length);
    expect(await cache.lookup("k", loader)).toEqual({ value: 1, from: "loader" });
    expect(await cache.lookup("k", loader)).toEqual({ value: 1, from: "l1" });
    await sleep(1_100);
    expect(await cache.lookup("k", loader)).toEqual({ value: 2, from: "loader" });
    // A second isolate, after the first one's memory expired: Redis forgot it too.
    await sleep(1_100);
    expect(await isolatedCache<number>(namespace, { ttlSeconds: 1 }).lookup("k", loader)).toEqual({
      value: 3,
      from: "loader",
    });
  });

  it("keeps isolate memory shorter than the TTL so isolates converge on Redis", async () => {
    const namespace = freshNamespace();
    const isolate = newIsolateCache(10);
    const cache = createCache<number>(config, env, { namespace, ttlSeconds: 60, l1TtlSeconds: 1, isolate });
    await cache.getOrLoad("k", async () => 1);
    await sleep(1_100);
    const again = await cache.lookup("k", async () => 2);
    expect(again).toEqual(hasRedis ? { value: 1, from: "l2" } : { value: 2, from: "loader" });
  });

  it("runs one load for concurrent misses in an isolate; the others share it", async () => {
    const namespace = freshNamespace();
    const cache = isolatedCache<string>(namespace);
    let release = (_value: string) => {};
    const loader = vi.fn(() => new Promise<string>((resolve) => (release = resolve)));
    const { result: served, seen } = await recorded(async () => {
      const lookups = Array.from({ length: 5 }, () => cache.lookup("k", loader));
      await sleep(50);
      release("once");
      return Promise.all(lookups);
    });
    expect(loader).toHaveBeenCalledTimes(1);
    expect(served.map((s) => s.value)).toEqual(Array(5).fill("once"));
    expect(served.map((s) => s.from).sort()).toEqual(["loader", "shared", "shared", "shared", "shared"]);
    expect(seen.filter((s) => s.startsWith("cache_loads_total")).sort()).toEqual([
      `cache_loads_total:${namespace}:ok`,
      ...Array(4).fill(`cache_loads_total:${namespace}:shared`),
    ]);
  });

  it("shares a failed load's error and stores nothing", async () => {
    const namespace = freshNamespace();
    const cache = isolatedCache<string>(namespace);
    const failing = vi.fn(async () => {
      await sleep(20);
      throw new Error("database down");
    });
    const { result, seen } = await recorded(() =>
      Promise.allSettled([cache.lookup("k", failing), cache.lookup("k", failing)]),
    );
    expect(result.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(failing).toHaveBeenCalledTimes(1);
    expect(seen).toContain(`cache_loads_total:${namespace}:error`);
    expect(await cache.lookup("k", async () => "recovered")).toEqual({ value: "recovered", from: "loader" });
  });

  it("does not store a value the caller marks as not cacheable", async () => {
    const cache = isolatedCache<{ degraded: boolean }>(freshNamespace(), { cacheable: (v) => !v.degraded });
    const loader = vi.fn(async () => ({ degraded: true }));
    await cache.getOrLoad("k", loader);
    expect(await cache.lookup("k", loader)).toEqual({ value: { degraded: true }, from: "loader" });
    expect(loader).toHaveBeenCalledTimes(2);
  });

  describe.skipIf(!hasRedis)("across isolates (a lock in Redis)", () => {
    it("lets one isolate load while the other waits for its value", async () => {
      const namespace = freshNamespace();
      const holder = isolatedCache<string>(namespace).lookup("k", async () => {
        await sleep(300);
        return "loaded once";
      });
      await sleep(100); // the holder has taken the lock
      const waiterLoader = vi.fn(async () => "loaded twice");
      const { result: waited, seen } = await recorded(async () => {
        const waiting = await isolatedCache<string>(namespace).lookup("k", waiterLoader);
        await holder;
        return waiting;
      });
      expect(await holder).toEqual({ value: "loaded once", from: "loader" });
      expect(waited).toEqual({ value: "loaded once", from: "l2" });
      expect(waiterLoader).not.toHaveBeenCalled();
      // The holder's load (ok) finished while the waiter polled; the waiter counts it as shared.
      expect(seen.filter((s) => s.startsWith("cache_loads_total")).sort()).toEqual([
        `cache_loads_total:${namespace}:ok`,
        `cache_loads_total:${namespace}:shared`,
      ]);
    });

    it("loads in the waiting isolate at once when the holder's load fails", async () => {
      const namespace = freshNamespace();
      const holder = isolatedCache<string>(namespace)
        .lookup("k", async () => {
          await sleep(150);
          throw new Error("upstream down");
        })
        .catch((error: Error) => error.message);
      await sleep(100);
      const started = Date.now();
      const waited = await isolatedCache<string>(namespace).lookup("k", async () => "loaded here");
      expect(await holder).toBe("upstream down");
      expect(waited).toEqual({ value: "loaded here", from: "loader" });
      expect(Date.now() - started).toBeLessThan(900);
    });

    it("never waits long: a slow holder is given about a second, then the waiter loads", async () => {
      const namespace = freshNamespace();
      const holder = isolatedCache<string>(namespace).lookup("k", async () => {
        await sleep(2_500);
        return "slow";
      });
      await sleep(100);
      const started = Date.now();
      const waited = await isolatedCache<string>(namespace).lookup("k", async () => "impatient");
      expect(waited).toEqual({ value: "impatient", from: "loader" });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect((await holder).value).toBe("slow");
    });
  });

  it("steps aside when Redis fails: the loader runs, the error is counted, nothing throws", async () => {
    const namespace = freshNamespace();
    // Nothing listens on port 1: every Redis call fails.
    const broken = { ...config, UPSTASH_REDIS_REST_URL: "http://127.0.0.1:1", UPSTASH_REDIS_REST_TOKEN: "token" };
    const cache = isolatedCache<string>(namespace, {}, broken);
    const warnings = vi.spyOn(console, "warn").mockImplementation(() => {});
    const first = await recorded(() => cache.lookup("k", async () => "loaded"));
    expect(first.result).toEqual({ value: "loaded", from: "loader" });
    expect(first.seen).toEqual([
      `cache_lookups_total:${namespace}:l1:miss`,
      `cache_lookups_total:${namespace}:l2:error`,
      `cache_loads_total:${namespace}:ok`,
    ]);
    expect(await cache.lookup("k", async () => "again")).toEqual({ value: "loaded", from: "l1" });
    // L2 is now paused for this isolate: the next miss does not wait on Redis, and says so.
    const started = Date.now();
    const next = await recorded(() => cache.lookup("other", async () => "fresh"));
    expect(Date.now() - started).toBeLessThan(100);
    expect(next.result).toEqual({ value: "fresh", from: "loader" });
    expect(next.seen).toContain(`cache_lookups_total:${namespace}:l2:error`);
    // Said once, when the pause began.
    expect(warnings).toHaveBeenCalledTimes(1);
    expect(warnings.mock.calls[0]?.[0]).toContain("L2 cache (Redis) failing");
    warnings.mockRestore();
  });
});

describe("query embeddings", () => {
  it("are embedded once per model, dimension and text; batches pass through", async () => {
    const inner = localEmbedder();
    const embed = vi.spyOn(inner, "embed");
    const embedder = cachedEmbedder(inner, isolatedCache<number[]>(freshNamespace()));
    const [first] = await embedder.embed(["low blood sugar"]);
    const [second] = await embedder.embed(["low blood sugar"]);
    expect(second).toEqual(first);
    expect(embed).toHaveBeenCalledTimes(1);
    expect(await embedder.embed(["a", "b"])).toHaveLength(2);
    expect(embed).toHaveBeenCalledTimes(2);
    const other = cachedEmbedder({ ...inner, model: "other-model" }, isolatedCache<number[]>(freshNamespace()));
    await other.embed(["low blood sugar"]);
    expect(embed).toHaveBeenCalledTimes(3);
  });
});

describe("search results", () => {
  const SOURCE = `cache-${run}`;
  // Made-up words no other document holds.
  const WORD = `quorvantel${run.replace(/\d/g, "")}`;
  const noQueue = { KB_INGEST: { send: async () => {}, sendBatch: async () => {} } };
  let admin: TestUser;
  let user: TestUser;

  beforeAll(async () => {
    admin = await signedInUser("admin");
    user = await signedInUser();
  });

  async function addDocument(title: string, text: string): Promise<string> {
    const res = await upload(
      admin.access,
      { bytes: text, name: `${title}.txt`, type: "text/plain" },
      { title, source_type: SOURCE },
      noQueue,
    );
    expect(res.status).toBe(202);
    expect(await ingestNow(res.body.id)).toBe("indexed");
    return res.body.id;
  }

  /** Searches through the route; says which tier served the results (from the cache metrics). */
  async function search(query: string, mode: string) {
    const { result: body, seen } = await recorded(async () => {
      const res = await call("POST", "/api/kb/search", {
        token: user.access,
        json: { query, mode, filters: { source_type: SOURCE } },
      });
      expect(res.status).toBe(200);
      return res.body;
    });
    const hit = seen.find((s) => /^cache_lookups_total:search:l[12]:hit$/.test(s));
    const tier = hit ? hit.split(":")[2] : seen.includes("cache_loads_total:search:ok") ? "loader" : "none";
    return { body, tier, titles: body.results.map((r: { title: string }) => r.title) as string[] };
  }

  // Without a vector store a hybrid search is degraded, and degraded results are never cached.
  const modes = hasVector ? ["keyword", "hybrid"] : ["keyword"];

  it.each(modes)("cache invalidation after a delete (%s)", async (mode) => {
    const word = `${WORD}${mode}`;
    const id = await addDocument(`deleted ${mode}`, `Tachycardia ${word} is a fast heart rate.`);
    const query = `${word} tachycardia`;
    const first = await search(query, mode);
    expect(first.titles).toEqual([`deleted ${mode}`]);
    expect(first.tier).toBe("loader");
    const second = await search(query, mode);
    expect(second.tier).toBe("l1");
    expect(second.body.results).toEqual(first.body.results);
    expect(second.body.took_ms).toBeGreaterThanOrEqual(0);

    expect((await call("DELETE", `/api/admin/kb/documents/${id}`, { token: admin.access })).status).toBe(204);
    const after = await search(query, mode);
    expect(after.tier).toBe("loader");
    expect(after.titles).not.toContain(`deleted ${mode}`);
  });

  it("a reindex bumps the version: the new generation's chunks are served, not the cached ones", async () => {
    const word = `${WORD}reindex`;
    const id = await addDocument("reindexed", `Bradycardia ${word} is a slow heart rate.`);
    const before = await search(word, "keyword");
    expect((await search(word, "keyword")).tier).toBe("l1");
    expect(await ingestNow(id)).toBe("indexed");
    const after = await search(word, "keyword");
    expect(after.tier).toBe("loader");
    expect(after.titles).toEqual(["reindexed"]);
    expect(after.body.results[0].chunk_id).not.toBe(before.body.results[0].chunk_id);
  });

  it("does not cache a degraded search (the vector store is down)", async () => {
    const word = `${WORD}degraded`;
    await addDocument("degraded", `Syncope ${word} is fainting.`);
    const down: VectorStore = {
      ...createVectorStore(config),
      query: async () => {
        throw new Error("vector store down");
      },
    };
    const request = { query: `${word} syncope`, filters: { sourceTypes: [SOURCE] } };
    const { result, seen } = await recorded(async () => [
      await hybridSearch(config, env, request, { store: down }),
      await hybridSearch(config, env, request, { store: down }),
    ]);
    for (const found of result) {
      expect(found.retrievers.vector.skipped).toBeDefined();
      expect(found.results.map((r) => r.title)).toEqual(["degraded"]);
    }
    expect(seen.filter((s) => s === "cache_loads_total:search:ok")).toHaveLength(2);
    expect(seen.filter((s) => s === "kb_search_total:hybrid:degraded")).toHaveLength(2);
  });

  it("can be turned off per call", async () => {
    const word = `${WORD}off`;
    await addDocument("uncached", `Dyspnea ${word} is shortness of breath.`);
    const request = { query: word, mode: "keyword" as const, filters: { sourceTypes: [SOURCE] } };
    const { result, seen } = await recorded(async () => [
      await hybridSearch(config, env, request, { cache: false }),
      await hybridSearch(config, env, request, { cache: false }),
    ]);
    expect(result.map((found) => found.results.map((r) => r.title))).toEqual([["uncached"], ["uncached"]]);
    expect(seen.filter((s) => s.startsWith("cache_"))).toEqual([]);
    expect(seen.filter((s) => s === "kb_search_total:keyword:ok")).toHaveLength(2);
  });
});
