import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app.ts";
import type { Env } from "../../src/env.ts";
import { ApiError } from "../../src/errors.ts";
import { addressKey, clientIpKey, rateLimit } from "../../src/middleware/rate-limit.ts";
import {
  assertNotLockedOut,
  clearLoginFailures,
  enforceRateLimit,
  recordLoginFailure,
} from "../../src/rate-limit/limits.ts";
import { FAILURE_MEMORY_MS } from "../../workers/rate-limiter.ts";
import { serve } from "./harness.ts";

const HOUR = 3600;
// Storage is shared by the tests of this file, so each test uses its own objects and addresses.
const limiter = (name: string = crypto.randomUUID()) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(name));
const randomIp = () => `2001:db8:${crypto.randomUUID().slice(0, 4)}:${crypto.randomUUID().slice(0, 4)}::1`;

/** Everything the object keeps in storage, and its pending alarm. */
const storageOf = (stub: ReturnType<typeof limiter>) =>
  runInDurableObject(stub, async (_, state) => ({
    keys: [...state.storage.kv.list()].map(([key]) => key),
    alarm: await state.storage.getAlarm(),
  }));

/** The alarm was due in the past, so the runtime fires it at once: wait for its clean-up. */
async function expectCleanedUp(stub: ReturnType<typeof limiter>) {
  await vi.waitFor(async () => expect(await storageOf(stub)).toEqual({ keys: [], alarm: null }));
}

const analyticsNames = (spy: { mock: { calls: [AnalyticsEngineDataPoint?][] } }) =>
  spy.mock.calls.map(([point]) => point?.indexes?.[0]);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("RateLimiter.hit", () => {
  it("allows exactly the limit, then refuses until the oldest hit leaves the window", async () => {
    const stub = limiter();
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      expect(await stub.hit(5, HOUR, t0 + i * 1000)).toEqual({ allowed: true, remaining: 4 - i, retryAfterSeconds: 0 });
    }
    expect(await stub.hit(5, HOUR, t0 + 5000)).toEqual({ allowed: false, remaining: 0, retryAfterSeconds: HOUR - 5 });
    expect(await stub.hit(5, HOUR, t0 + HOUR * 1000 - 1)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    expect(await stub.hit(5, HOUR, t0 + HOUR * 1000)).toEqual({ allowed: true, remaining: 0, retryAfterSeconds: 0 });
    expect(await stub.hit(5, HOUR, t0 + HOUR * 1000)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
  });

  it("slides: each hit frees its slot one window after it, and refused hits use none", async () => {
    const stub = limiter();
    const t0 = Date.now();
    await stub.hit(2, 60, t0);
    await stub.hit(2, 60, t0 + 30_000);
    for (let s = 31; s < 60; s += 7) {
      expect(await stub.hit(2, 60, t0 + s * 1000)).toMatchObject({ allowed: false, retryAfterSeconds: 60 - s });
    }
    expect((await stub.hit(2, 60, t0 + 60_000)).allowed).toBe(true);
    expect(await stub.hit(2, 60, t0 + 61_000)).toMatchObject({ allowed: false, retryAfterSeconds: 29 });
    expect((await stub.hit(2, 60, t0 + 90_000)).allowed).toBe(true);
  });

  it("applies a lowered limit at once, retrying when enough hits have left", async () => {
    const stub = limiter();
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) await stub.hit(5, 60, t0 + i * 1000);
    // Three hits inside the window against a limit of two: the second must leave first (at t0 + 61 s).
    expect(await stub.hit(2, 60, t0 + 3000)).toMatchObject({ allowed: false, retryAfterSeconds: 58 });
  });

  it("keeps its count across eviction", async () => {
    const name = crypto.randomUUID();
    for (let i = 0; i < 3; i++) await limiter(name).hit(3, HOUR);
    await evictDurableObject(limiter(name));
    expect((await limiter(name).hit(3, HOUR)).allowed).toBe(false);
  });

  it("counts each key on its own", async () => {
    const [a, b] = [limiter(), limiter()];
    await a.hit(1, HOUR);
    expect((await a.hit(1, HOUR)).allowed).toBe(false);
    expect((await b.hit(1, HOUR)).allowed).toBe(true);
  });

  it("allows exactly 5 of 20 concurrent hits against a limit of 5", async () => {
    const name = crypto.randomUUID();
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => limiter(name).hit(5, HOUR)));
    expect(verdicts.filter((v) => v.allowed)).toHaveLength(5);
  });

  it("deletes all its storage once the window has passed", async () => {
    const stub = limiter();
    await stub.hit(5, 60, Date.now() - 120_000);
    await expectCleanedUp(stub);
    expect(await stub.hit(1, 60)).toEqual({ allowed: true, remaining: 0, retryAfterSeconds: 0 });
  });

  it("keeps live hits when the alarm fires early, and reschedules it", async () => {
    const stub = limiter();
    const t0 = Date.now();
    await stub.hit(1, HOUR, t0);
    expect(await storageOf(stub)).toEqual({ keys: ["hits"], alarm: t0 + HOUR * 1000 });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await storageOf(stub)).toEqual({ keys: ["hits"], alarm: t0 + HOUR * 1000 });
    expect((await stub.hit(1, HOUR, t0 + 1000)).allowed).toBe(false);
  });
});

describe("RateLimiter lockout", () => {
  const policy = { threshold: 3, baseSeconds: 60, maxSeconds: 300 };

  it("locks at the threshold, doubles with each further failure, and stops at the cap", async () => {
    const stub = limiter();
    let now = Date.now();
    expect(await stub.recordFailure(policy, now)).toEqual({ locked: false, retryAfterSeconds: 0, failures: 1 });
    expect(await stub.recordFailure(policy, now)).toEqual({ locked: false, retryAfterSeconds: 0, failures: 2 });
    expect(await stub.checkLockout(now)).toEqual({ locked: false, retryAfterSeconds: 0 });
    const locks: number[] = [];
    for (let failure = 3; failure <= 7; failure++) {
      const result = await stub.recordFailure(policy, now);
      expect(result).toMatchObject({ locked: true, failures: failure });
      expect(await stub.checkLockout(now + 1000)).toEqual({
        locked: true,
        retryAfterSeconds: result.retryAfterSeconds - 1,
      });
      locks.push(result.retryAfterSeconds);
      now += result.retryAfterSeconds * 1000;
      expect(await stub.checkLockout(now)).toEqual({ locked: false, retryAfterSeconds: 0 });
    }
    expect(locks).toEqual([60, 120, 240, 300, 300]);
  });

  it("clears on success: the next failure counts from one", async () => {
    const stub = limiter();
    const now = Date.now();
    for (let i = 0; i < 3; i++) await stub.recordFailure(policy, now);
    expect((await stub.checkLockout(now)).locked).toBe(true);
    await stub.clearFailures();
    expect((await stub.checkLockout(now)).locked).toBe(false);
    expect(await stub.recordFailure(policy, now)).toMatchObject({ locked: false, failures: 1 });
  });

  it("forgets failures after a day without one", async () => {
    const stub = limiter();
    const t0 = Date.now();
    await stub.recordFailure(policy, t0);
    await stub.recordFailure(policy, t0 + 1000);
    expect(await stub.recordFailure(policy, t0 + 1000 + FAILURE_MEMORY_MS)).toMatchObject({ failures: 1 });
  });

  it("deletes all its storage once the failures are forgotten", async () => {
    const stub = limiter();
    await stub.recordFailure(policy, Date.now() - FAILURE_MEMORY_MS - 1000);
    await expectCleanedUp(stub);
  });

  it("stores nothing when a clean account logs in", async () => {
    const stub = limiter();
    await stub.clearFailures();
    expect(await storageOf(stub)).toEqual({ keys: [], alarm: null });
  });
});

describe("enforceRateLimit", () => {
  const rule = { limit: 2, windowSeconds: 60 };

  it("throws RATE_LIMITED with Retry-After once the key is over, and counts it", async () => {
    const write = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const key = randomIp();
    await enforceRateLimit(env, "login", key, rule);
    await enforceRateLimit(env, "login", key, rule);
    const error = await enforceRateLimit(env, "login", key, rule).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    const { code, status, message, headers, extensions } = error as ApiError;
    expect({ code, status }).toEqual({ code: "RATE_LIMITED", status: 429 });
    expect(message).toMatch(/^Too many login requests: at most 2 in 1 minute\. Retry in (\d+ seconds|1 minute)\.$/);
    expect(Number(headers["Retry-After"])).toBeGreaterThanOrEqual(59);
    expect(extensions.retryAfterSeconds).toBe(Number(headers["Retry-After"]));
    expect(write.mock.calls.map(([p]) => p)).toContainEqual(
      expect.objectContaining({ indexes: ["rate_limited_total"], blobs: ["rate_limited_total", "test", "login"] }),
    );
  });

  it("keeps rules apart: the same key has a separate count per rule", async () => {
    const key = randomIp();
    await enforceRateLimit(env, "login", key, { limit: 1, windowSeconds: 60 });
    await expect(enforceRateLimit(env, "refresh", key, { limit: 1, windowSeconds: 60 })).resolves.toBeUndefined();
  });

  it("names objects by a SHA-256 of the key, never the key itself", async () => {
    const key = `${randomIp()}:jane.doe@example.org`;
    await enforceRateLimit(env, "login", key, { limit: 1, windowSeconds: 60 });
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    expect((await limiter(`login:${hex}`).hit(1, 60)).allowed).toBe(false);
    expect((await limiter(`login:${key}`).hit(1, 60)).allowed).toBe(true);
  });

  it("allows exactly 5 of 20 concurrent requests", async () => {
    const key = randomIp();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => enforceRateLimit(env, "register", key, { limit: 5, windowSeconds: HOUR })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
  });

  it("fails open when the limiter is unreachable, and logs it once", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const down = {
      idFromName: (name: string) => env.RATE_LIMITER.idFromName(name),
      get: () => ({ hit: () => Promise.reject(new Error("limiter overloaded")) }),
    };
    const bindings = { ...env, RATE_LIMITER: down } as unknown as Env;
    await expect(enforceRateLimit(bindings, "login", "k", { limit: 1, windowSeconds: 60 })).resolves.toBeUndefined();
    await expect(enforceRateLimit(bindings, "login", "k", { limit: 1, windowSeconds: 60 })).resolves.toBeUndefined();
    const lines = errors.mock.calls.map(([line]) => String(line)).filter((l) => l.includes("rate limiter unreachable"));
    expect(lines).toHaveLength(1);
  });
});

describe("login lockout helpers", () => {
  const policy = { threshold: 2, baseSeconds: 30, maxSeconds: 120 };

  it("lock after the threshold, refuse with 429 while locked, and clear on success", async () => {
    const write = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const account = `${crypto.randomUUID()}@example.org`;
    expect(await recordLoginFailure(env, account, policy)).toMatchObject({ locked: false, failures: 1 });
    expect(analyticsNames(write)).not.toContain("auth_lockouts_total");
    expect(await recordLoginFailure(env, account, policy)).toEqual({
      locked: true,
      retryAfterSeconds: 30,
      failures: 2,
    });
    expect(analyticsNames(write)).toContain("auth_lockouts_total");

    const error = (await assertNotLockedOut(env, account).catch((e: unknown) => e)) as ApiError;
    expect(error.code).toBe("RATE_LIMITED");
    expect(error.message).toMatch(/temporarily locked after repeated failed logins\. Retry in \d+ seconds\./);
    expect(Number(error.headers["Retry-After"])).toBeGreaterThan(0);
    expect(write.mock.calls.map(([p]) => p?.blobs)).toContainEqual(["rate_limited_total", "test", "lockout"]);

    await clearLoginFailures(env, account);
    await expect(assertNotLockedOut(env, account)).resolves.toBeUndefined();
  });
});

describe("rateLimit middleware", () => {
  const app = createApp();
  app.get("/__probe/limited", rateLimit("register", clientIpKey), (c) => c.json({ ok: true }));
  const bindings = { JWT_SIGNING_KEYS: "k1:0123456789abcdef0123456789abcdef", RATE_LIMIT_REGISTER: "2/3600" };
  const get = (ip?: string) =>
    serve(app, "/__probe/limited", { headers: ip ? { "cf-connecting-ip": ip } : {} }, bindings);

  it("answers 429 problem+json with Retry-After once RATE_LIMIT_<RULE> is used up", async () => {
    const ip = randomIp();
    expect((await get(ip)).status).toBe(200);
    expect((await get(ip)).status).toBe(200);
    const res = await get(ip);
    expect(res.status).toBe(429);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const retryAfter = Number(res.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(HOUR - 1);
    expect(retryAfter).toBeLessThanOrEqual(HOUR);
    const body = await res.json<Record<string, unknown>>();
    expect(body).toMatchObject({
      status: 429,
      code: "RATE_LIMITED",
      retryAfterSeconds: retryAfter,
      requestId: res.headers.get("x-request-id"),
    });
    expect(body.detail).toMatch(/^Too many register requests: at most 2 in 1 hour\. Retry in/);
  });

  it("keys by the caller's address", async () => {
    const ip = randomIp();
    await get(ip);
    await get(ip);
    expect((await get(ip)).status).toBe(429);
    expect((await get(randomIp())).status).toBe(200);
  });

  it("counts an IPv6 caller by its /64, so rotating addresses gains nothing", async () => {
    const network = `2001:db8:${crypto.randomUUID().slice(0, 4)}:1`;
    await get(`${network}::a`);
    await get(`${network}:0:0:0:b`);
    expect((await get(`${network}:ffff:1:2:3`)).status).toBe(429);
  });

  it.each([
    ["198.51.100.7", "198.51.100.7"],
    ["2001:db8:a:b:c:d:e:f", "2001:db8:a:b::/64"],
    ["2001:DB8:00a::1", "2001:db8:a:0::/64"],
    ["2001:db8::", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["::ffff:198.51.100.7", "::ffff:198.51.100.7"],
  ])("keys %s as %s", (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });

  it("puts callers without cf-connecting-ip in one shared bucket", async () => {
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(429);
  });
});
