import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpstashServer, type UpstashServer } from "../../scripts/local-stack/upstash-server.ts";

// The real @upstash/redis client against the local server over the machine's Redis (REDIS_URL).
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const token = `test-token-${randomUUID()}`;
let skipReason = "";
const server: UpstashServer | undefined = await startUpstashServer({ redisUrl, token }).catch((error: Error) => {
  skipReason = ` (skipped: ${error.message})`;
  return undefined;
});

describe.skipIf(!server)(`Upstash-compatible REST server${skipReason}`, () => {
  const url = server?.url ?? "";
  const prefix = `test:upstash:${randomUUID()}:`;
  const key = (name: string) => `${prefix}${name}`;
  const client = (options: { responseEncoding?: false; automaticDeserialization?: boolean } = {}) =>
    new Redis({ url, token, enableTelemetry: false, enableAutoPipelining: false, retry: false, ...options });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  afterAll(async () => {
    const redis = client();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await server?.stop();
  });

  describe.each([
    { encoding: "base64 (client default)", options: {} },
    { encoding: "plain JSON", options: { responseEncoding: false as const } },
  ])("with $encoding responses", ({ encoding, options }) => {
    let redis: Redis;
    const k = (name: string) => key(`${encoding}:${name}`);
    beforeAll(() => {
      redis = client(options);
    });

    it("sets, gets and increments strings with automatic deserialization", async () => {
      expect(await redis.set(k("object"), { greeting: "héllo ✓", n: 1 })).toBe("OK");
      expect(await redis.get(k("object"))).toEqual({ greeting: "héllo ✓", n: 1 });
      expect(await redis.get(k("missing"))).toBeNull();
      expect(await redis.incr(k("counter"))).toBe(1);
      expect(await redis.incrby(k("counter"), 41)).toBe(42);
      expect(await redis.get(k("counter"))).toBe(42);
    });

    it("returns raw strings without automatic deserialization", async () => {
      const raw = client({ ...options, automaticDeserialization: false });
      await raw.set(k("raw"), '{"a":1}');
      expect(await raw.get(k("raw"))).toBe('{"a":1}');
      await raw.set(k("number"), "007");
      expect(await raw.get(k("number"))).toBe("007");
      expect(await raw.incr(k("raw-counter"))).toBe(1);
    });

    it("handles hashes", async () => {
      expect(await redis.hset(k("hash"), { name: "Ada", visits: 1 })).toBe(2);
      expect(await redis.hget(k("hash"), "name")).toBe("Ada");
      expect(await redis.hincrby(k("hash"), "visits", 2)).toBe(3);
      expect(await redis.hgetall(k("hash"))).toEqual({ name: "Ada", visits: 3 });
      expect(await redis.hdel(k("hash"), "name")).toBe(1);
      expect(await redis.hgetall(k("missing-hash"))).toBeNull();
    });

    it("applies expiry", async () => {
      await redis.set(k("expiring"), "v", { ex: 100 });
      const ttl = await redis.ttl(k("expiring"));
      expect(ttl).toBeGreaterThan(90);
      expect(ttl).toBeLessThanOrEqual(100);
      expect(await redis.pexpire(k("expiring"), 5_000)).toBe(1);
      const pttl = await redis.pttl(k("expiring"));
      expect(pttl).toBeGreaterThan(4_000);
      expect(pttl).toBeLessThanOrEqual(5_000);
      await redis.set(k("short"), "v", { px: 50 });
      await new Promise((resolve) => setTimeout(resolve, 120));
      expect(await redis.get(k("short"))).toBeNull();
      expect(await redis.ttl(k("missing"))).toBe(-2);
    });

    it("runs a pipeline", async () => {
      const pipeline = redis.pipeline();
      pipeline.set(k("p"), 1);
      pipeline.incr(k("p"));
      pipeline.get(k("p"));
      pipeline.lpush(k("list"), "a", "b");
      pipeline.lrange(k("list"), 0, -1);
      expect(await pipeline.exec()).toEqual(["OK", 2, 2, 2, ["b", "a"]]);
    });

    it("runs multi/exec as a transaction", async () => {
      const transaction = redis.multi();
      transaction.set(k("m"), "héllo");
      transaction.get(k("m"));
      transaction.zadd(k("zset"), { score: 2, member: "b" }, { score: 1, member: "a" });
      transaction.zrange(k("zset"), 0, -1, { withScores: true });
      expect(await transaction.exec()).toEqual(["OK", "héllo", 2, ["a", 1, "b", 2]]);
    });

    it("reports a Redis error reply with its message", async () => {
      await redis.set(k("text"), "not a number");
      await expect(redis.incr(k("text"))).rejects.toThrow(/ERR value is not an integer or out of range/);
      const transaction = redis.multi();
      transaction.incr(k("text"));
      await expect(transaction.exec()).rejects.toThrow(/ERR value is not an integer/);
    });

    it("rejects a bad token", async () => {
      const intruder = new Redis({ url, token: "wrong", enableTelemetry: false, retry: false, ...options });
      await expect(intruder.get(k("object"))).rejects.toThrow(/Unauthorized/);
    });
  });

  describe("wire protocol", () => {
    it("answers 401 with a JSON error without the right bearer token", async () => {
      const response = await fetch(url, { method: "POST", body: JSON.stringify(["PING"]) });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: "Unauthorized" });
    });

    it("renders integers, nil and nested arrays, and base64-encodes every string on request", async () => {
      const script = ["EVAL", "return {1, 'a', {2, 'b'}, false}", "0"];
      expect(await (await post("/", script)).json()).toEqual({ result: [1, "a", [2, "b"], null] });
      const encoded = await (await post("/", script, { "Upstash-Encoding": "base64" })).json();
      expect(encoded).toEqual({ result: [1, "YQ==", [2, "Yg=="], null] });
      expect(await (await post("/", ["GET", key("nothing")], { "Upstash-Encoding": "base64" })).json()).toEqual({
        result: null,
      });
    });

    it("answers a Redis error with 400 and a pipeline error in place", async () => {
      await post("/", ["SET", key("wire-text"), "x"]);
      const single = await post("/", ["INCR", key("wire-text")]);
      expect(single.status).toBe(400);
      expect(await single.json()).toEqual({ error: "ERR value is not an integer or out of range" });
      const pipeline = await post("/pipeline", [
        ["INCR", key("wire-text")],
        ["GET", key("wire-text")],
      ]);
      expect(pipeline.status).toBe(200);
      expect(await pipeline.json()).toEqual([
        { error: "ERR value is not an integer or out of range" },
        { result: "x" },
      ]);
    });

    it("aborts a transaction whose command Redis refuses to queue", async () => {
      const response = await post("/multi-exec", [
        ["SET", key("aborted")],
        ["GET", key("aborted")],
      ]);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/EXECABORT/);
    });

    it("serves commands in the path", async () => {
      const set = await post(`/set/${encodeURIComponent(key("path"))}`, "value from body");
      expect(await set.json()).toEqual({ result: "OK" });
      const get = await fetch(`${url}/get/${encodeURIComponent(key("path"))}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(await get.json()).toEqual({ result: "value from body" });
    });

    it("refuses malformed bodies, commands that would block the shared connection, and oversized bodies", async () => {
      expect((await post("/", "not json")).status).toBe(400);
      expect((await post("/", [])).status).toBe(400);
      expect((await post("/", ["SET", { nested: true }, "v"])).status).toBe(400);
      const blocking = await post("/", ["BLPOP", key("queue"), "0"]);
      expect(blocking.status).toBe(400);
      expect(((await blocking.json()) as { error: string }).error).toMatch(/BLPOP is not supported/);
      expect((await post("/", ["SET", key("big"), "x".repeat(11 * 1024 * 1024)])).status).toBe(413);
    });
  });
});

describe("startUpstashServer without Redis", () => {
  it("rejects quickly with a clear error", async () => {
    const started = Date.now();
    await expect(startUpstashServer({ redisUrl: "redis://127.0.0.1:1", token })).rejects.toThrow(
      /Redis not reachable at redis:\/\/127\.0\.0\.1:1/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
