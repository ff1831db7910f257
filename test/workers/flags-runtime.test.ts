// Feature flags at run time: evaluation for the caller, propagation of writes (isolate memory, KV, TTL), outages
// (KV or Postgres down), the change stream, exposure analytics, the requireFlag gate and the cron jobs.
// KV and the FlagHub's storage are this file's own; Postgres is shared with every other file (unique keys).
import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { neonConfig } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app.ts";
import { sha256Hex } from "../../src/auth/crypto.ts";
import { queryRows } from "../../src/db/client.ts";
import type { Env } from "../../src/env.ts";
import { ApiError } from "../../src/errors.ts";
import { evaluate } from "../../src/flags/evaluate.ts";
import { EXPOSURE_INDEX, flushExposures } from "../../src/flags/exposures.ts";
import type { Snapshot } from "../../src/flags/model.ts";
import { flagHub, publishCommitted, reconcileFlagSnapshot, snapshotSources } from "../../src/flags/publish.ts";
import { forgetFlagCallers, requireFlag } from "../../src/flags/request.ts";
import {
  currentRuleSet,
  forgetSnapshot,
  heldSnapshot,
  KV_SNAPSHOT_KEY,
  KV_VERSION_KEY,
  rememberSnapshot,
  type SnapshotSources,
} from "../../src/flags/snapshot-cache.ts";
import { buildSnapshot } from "../../src/flags/store.ts";
import { STREAM_RECHECK_MS, streamClock } from "../../src/flags/stream.ts";
import { requireUser } from "../../src/middleware/auth.ts";
import { sleep } from "../../src/sleep.ts";
import type { FlagChangeEvent, FlagHub } from "../../workers/flag-hub.ts";
import {
  countingKv,
  createFlag,
  evaluateFor,
  failingKv,
  flagPath,
  kvState,
  openStream,
  ruleSetVersion,
  runCronJob,
  setOverride,
  toggleFlag,
  uniqueFlagKey,
  workerEnv,
} from "./flag-helpers.ts";
import { call, OPERATOR_TOKEN } from "./harness.ts";
import { config, db, signedInUser, type TestUser } from "./identity-helpers.ts";

let admin: TestUser;
let viewer: TestUser;
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  [admin, viewer, alice, bob] = await Promise.all([
    signedInUser("admin"),
    signedInUser("viewer"),
    signedInUser("user"),
    signedInUser("user"),
  ]);
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Snapshot sources for currentRuleSet called directly; by default Postgres must not be read. */
function sources(overrides: Partial<SnapshotSources> = {}): SnapshotSources {
  return {
    kv: workerEnv.FLAGS_KV,
    ttlMs: 60_000,
    loadFromDatabase: vi.fn(() => Promise.reject(new Error("Postgres must not be read here"))),
    ...overrides,
  };
}

/**
 * Makes every query on the flag tables fail as if Postgres could not be reached, while other queries (sign-in)
 * still work: the Neon HTTP driver's fetch is wrapped for the duration.
 */
function unreachableFlagTables() {
  const original = neonConfig.fetchFunction as (url: string, init: RequestInit) => Promise<Response>;
  const hits = vi.fn();
  neonConfig.fetchFunction = (url: string, init: RequestInit) => {
    if (typeof init?.body === "string" && /\bflag(s|_state|_segments|_overrides)\b/.test(init.body)) {
      hits();
      return Promise.reject(new TypeError("fetch failed: connect ECONNREFUSED 127.0.0.1:5432"));
    }
    return original(url, init);
  };
  return {
    hits,
    restore: () => {
      neonConfig.fetchFunction = original;
    },
  };
}

/** A counter's value in the Prometheus exposition of GET /metrics (0 when not yet recorded); `series` is catalog name and labels. */
async function metricValue(series: string): Promise<number> {
  const res = await call("GET", "/metrics", { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
  const exposed = `voiceassist_${series}`;
  const line = String(res.body)
    .split("\n")
    .find((l) => l.startsWith(`${exposed} `));
  return line ? Number(line.slice(exposed.length + 1)) : 0;
}

const emptyKv = async () => {
  await workerEnv.FLAGS_KV.delete(KV_VERSION_KEY);
  await workerEnv.FLAGS_KV.delete(KV_SNAPSHOT_KEY);
};

describe("POST /api/flags/evaluate", () => {
  it("refuses a caller without a token (401 problem)", async () => {
    const res = await call("POST", "/api/flags/evaluate", { json: { context: {} } });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.body.code).toBe("UNAUTHORIZED");
  });

  it("returns every live flag with enabled, variant, value, reason and version, and the rule-set version", async () => {
    const colour = uniqueFlagKey("colour");
    const off = uniqueFlagKey("off");
    await createFlag(admin.access, {
      key: colour,
      type: "string",
      enabled: true,
      defaultValue: "plain",
      variants: [{ name: "blue", weight: 1000, payload: { type: "string", value: "navy" } }],
    });
    await createFlag(admin.access, { key: off, enabled: false });

    const res = await evaluateFor(bob.access);
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(await ruleSetVersion());
    expect(res.body.flags[colour]).toEqual({
      enabled: true,
      variant: { name: "blue", payload: { type: "string", value: "navy" }, enabled: true },
      value: "navy",
      reason: "DEFAULT",
      version: 1,
    });
    expect(res.body.flags[off]).toEqual({
      enabled: false,
      variant: { name: "disabled", enabled: false },
      value: false,
      reason: "DISABLED",
      version: 1,
    });
    const live = await queryRows<{ key: string }>(db, sql`select key from flags where not archived`);
    expect(Object.keys(res.body.flags).sort()).toEqual(live.map((row) => row.key).sort());
    for (const evaluation of Object.values(res.body.flags) as Record<string, unknown>[]) {
      expect(Object.keys(evaluation).sort()).toEqual(["enabled", "reason", "value", "variant", "version"]);
    }
  });

  it("takes null context fields and properties (as Unleash SDKs send them) as absent", async () => {
    const key = uniqueFlagKey("nulls");
    await createFlag(admin.access, {
      key,
      enabled: true,
      strategies: [{ name: "default", constraints: [{ contextName: "plan", operator: "IN", values: ["pro"] }] }],
    });
    const nulls = { userId: null, sessionId: null, appName: null, currentTime: null, properties: { x: null } };
    const res = await evaluateFor(bob.access, nulls);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.flags[key]).toMatchObject({ enabled: false, reason: "DEFAULT" });
    const pro = await evaluateFor(bob.access, { ...nulls, properties: { x: null, plan: "pro" } });
    expect(pro.body.flags[key]).toMatchObject({ enabled: true, reason: "TARGETING_MATCH" });
  });

  it("evaluates the caller as itself: a context naming another user never gets that user's override", async () => {
    const key = uniqueFlagKey("override");
    await createFlag(admin.access, { key, enabled: false });
    await setOverride(admin.access, key, alice.id, { value: true, reason: "beta tester" });

    const impostor = await evaluateFor(bob.access, { userId: alice.id });
    expect(impostor.status).toBe(200);
    expect(impostor.body.flags[key]).toMatchObject({ enabled: false, value: false, reason: "DISABLED" });

    const real = await evaluateFor(alice.access);
    expect(real.body.flags[key]).toMatchObject({ enabled: true, value: true, reason: "OVERRIDE" });
    // Naming someone else does not take Alice's own override away either.
    const renamed = await evaluateFor(alice.access, { userId: bob.id });
    expect(renamed.body.flags[key]).toMatchObject({ enabled: true, reason: "OVERRIDE" });
  });
});

describe("propagation of writes", () => {
  it("a write is visible to evaluation as soon as it returns; KV holds it for other isolates", async () => {
    const key = uniqueFlagKey("propagate");
    await createFlag(admin.access, { key, enabled: false });
    // This isolate now holds the rule set, within its TTL.
    expect((await evaluateFor(bob.access)).body.flags[key].enabled).toBe(false);

    const toggles = await metricValue('flag_writes_total{action="toggled"}');
    await toggleFlag(admin.access, key, true);
    expect(await metricValue('flag_writes_total{action="toggled"}')).toBe(toggles + 1);
    const version = await ruleSetVersion();
    const after = await evaluateFor(bob.access);
    expect(after.body.version).toBe(version);
    expect(after.body.flags[key]).toMatchObject({ enabled: true, version: 2 });

    const kv = await kvState();
    expect(kv.version).toBe(version);
    expect(kv.snapshot?.version).toBe(version);
    expect(kv.snapshot?.flags.find((flag) => flag.key === key)).toMatchObject({ enabled: true, version: 2 });

    // Another isolate (nothing held) gets it from KV, without reading Postgres.
    forgetSnapshot();
    const load = vi.fn(() => Promise.reject(new Error("Postgres must not be read")));
    const ruleSet = await currentRuleSet(sources({ loadFromDatabase: load }));
    expect(ruleSet.version).toBe(version);
    expect(evaluate(ruleSet, key, {}).enabled).toBe(true);
    expect(load).not.toHaveBeenCalled();

    forgetSnapshot();
    const elsewhere = await evaluateFor(bob.access);
    expect(elsewhere.body.version).toBe(version);
    expect(elsewhere.body.flags[key].enabled).toBe(true);
  });

  it("an isolate holding an older snapshot sees the new version once its TTL has passed", async () => {
    const key = uniqueFlagKey("ttl");
    await createFlag(admin.access, { key, enabled: false });
    const old = structuredClone(heldSnapshot()) as Snapshot;
    expect(old.flags.some((flag) => flag.key === key)).toBe(true);
    await toggleFlag(admin.access, key, true);
    const version = await ruleSetVersion();
    expect(version).toBeGreaterThan(old.version);

    // Stand for an isolate that read the old snapshot just before the write.
    forgetSnapshot();
    rememberSnapshot(old);
    const kv = countingKv();
    const ttlMs = 150;
    const within = await currentRuleSet(sources({ kv: kv.namespace, ttlMs }));
    expect(within.version).toBe(old.version);
    expect(evaluate(within, key, {}).enabled).toBe(false);
    expect(kv.reads).not.toHaveBeenCalled();

    await sleep(ttlMs + 30);
    const later = await currentRuleSet(sources({ kv: kv.namespace, ttlMs }));
    expect(later.version).toBe(version);
    expect(evaluate(later, key, {}).enabled).toBe(true);
    expect(kv.reads).toHaveBeenCalled();
  });
});

describe("outages", () => {
  it("serves the last good rule set while KV fails, without asking KV again on every request", async () => {
    const key = uniqueFlagKey("last-good");
    await createFlag(admin.access, { key, enabled: true });
    const good = heldSnapshot() as Snapshot;
    expect(good.version).toBe(await ruleSetVersion());

    const kv = failingKv();
    const load = vi.fn(() => Promise.reject(new Error("Postgres is down too")));
    const ttlMs = 200;
    await sleep(ttlMs + 30); // the held rule set is due for a check
    const served = await currentRuleSet(sources({ kv: kv.namespace, ttlMs, loadFromDatabase: load }));
    expect(served.version).toBe(good.version);
    expect(evaluate(served, key, {}).enabled).toBe(true);
    expect(kv.reads).toHaveBeenCalled();
    const tries = kv.reads.mock.calls.length;
    await currentRuleSet(sources({ kv: kv.namespace, ttlMs, loadFromDatabase: load }));
    expect(kv.reads.mock.calls.length).toBe(tries);

    // Through the route, checking KV on every request (TTL 0).
    const res = await evaluateFor(
      bob.access,
      {},
      { overrides: { FLAGS_KV: kv.namespace, FLAGS_CACHE_TTL_SECONDS: "0" } },
    );
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(good.version);
    expect(res.body.flags[key].enabled).toBe(true);
  });

  it("keeps evaluating for signed-in callers while the whole database is down (token-only sign-in, 503 for API keys)", async () => {
    const key = uniqueFlagKey("db-down");
    await createFlag(admin.access, { key, enabled: true });
    const keyRes = await call("POST", "/api/users/me/api-keys", { token: bob.access, json: { name: "flags" } });
    expect(keyRes.status).toBe(201);
    forgetFlagCallers();
    const original = neonConfig.fetchFunction as (url: string, init: RequestInit) => Promise<Response>;
    neonConfig.fetchFunction = () => Promise.reject(new TypeError("fetch failed: connect ECONNREFUSED 127.0.0.1:5432"));
    try {
      const res = await evaluateFor(bob.access, {});
      expect(res.status).toBe(200);
      expect(res.body.flags[key].enabled).toBe(true);
      const byKey = await call("POST", "/api/flags/evaluate", {
        headers: { "x-api-key": (keyRes.body as { key: string }).key },
        json: { context: {} },
      });
      expect(byKey.status).toBe(503);
      expect(byKey.body.code).toBe("NOT_READY");
      // A token whose signature fails is refused before any database call, outage or not.
      const forged = await evaluateFor(`${bob.access.slice(0, -4)}AAAA`, {});
      expect(forged.status).toBe(401);
    } finally {
      neonConfig.fetchFunction = original;
      forgetFlagCallers();
    }
  });

  it("falls back to Postgres when KV fails and nothing is held", async () => {
    const version = await ruleSetVersion();
    forgetSnapshot();
    const kv = failingKv();
    const load = vi.fn(() => buildSnapshot(db));
    const ruleSet = await currentRuleSet(sources({ kv: kv.namespace, ttlMs: 0, loadFromDatabase: load }));
    expect(ruleSet.version).toBe(version);
    expect(load).toHaveBeenCalledTimes(1);

    forgetSnapshot();
    const before = await metricValue('flag_snapshot_fallbacks_total{served="database"}');
    const res = await evaluateFor(bob.access, {}, { overrides: { FLAGS_KV: kv.namespace } });
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(version);
    // Operators see the degraded read in /metrics (docs/metrics.md, dashboards/flags.json).
    expect(await metricValue('flag_snapshot_fallbacks_total{served="database"}')).toBe(before + 1);
  });

  it("answers a quick 503 NOT_READY problem when KV fails, nothing is held and Postgres is unreachable", async () => {
    forgetSnapshot();
    const kv = failingKv();
    const error = await currentRuleSet(
      sources({
        kv: kv.namespace,
        ttlMs: 0,
        loadFromDatabase: () => Promise.reject(new Error("connect ECONNREFUSED")),
      }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: "NOT_READY", status: 503 });

    // The route: sign-in still reaches Postgres, the flag tables do not.
    forgetSnapshot();
    const outage = unreachableFlagTables();
    try {
      const started = Date.now();
      const res = await evaluateFor(bob.access, {}, { overrides: { FLAGS_KV: kv.namespace } });
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(res.body).toMatchObject({ status: 503, code: "NOT_READY" });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      outage.restore();
    }
    // KV up but empty (a fresh namespace): Postgres is asked, and its failure is the same clear 503.
    await emptyKv();
    forgetSnapshot();
    const unreachable = unreachableFlagTables();
    try {
      const res = await evaluateFor(bob.access);
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ status: 503, code: "NOT_READY" });
      expect(unreachable.hits).toHaveBeenCalled();
    } finally {
      unreachable.restore();
    }
    // Once KV and Postgres answer again, evaluation is back (and the hub refills KV).
    const recovered = await evaluateFor(bob.access);
    expect(recovered.status).toBe(200);
    expect(recovered.body.version).toBe(await ruleSetVersion());
  });

  it("with KV empty, reads Postgres once (however many requests ask) and the hub fills KV", async () => {
    await createFlag(admin.access, { key: uniqueFlagKey("fresh"), enabled: true });
    const version = await ruleSetVersion();
    await emptyKv();
    forgetSnapshot();

    const ctx = createExecutionContext();
    const load = vi.fn(() => buildSnapshot(db));
    const fresh = { ...snapshotSources(workerEnv, config, ctx), ttlMs: 0, loadFromDatabase: load };
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => currentRuleSet(fresh)));
    await waitOnExecutionContext(ctx);
    expect(load).toHaveBeenCalledTimes(1);
    expect(new Set(results).size).toBe(1);
    expect(results[0]?.version).toBe(version);
    const kv = await kvState();
    expect(kv.version).toBe(version);
    expect(kv.snapshot?.version).toBe(version);

    // The next isolate reads KV, not Postgres.
    forgetSnapshot();
    const again = vi.fn(() => buildSnapshot(db));
    expect((await currentRuleSet({ ...fresh, loadFromDatabase: again })).version).toBe(version);
    expect(again).not.toHaveBeenCalled();

    // The same through the route.
    await emptyKv();
    forgetSnapshot();
    const res = await evaluateFor(bob.access);
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(version);
    expect((await kvState()).version).toBe(version);
  });
});

describe("GET /api/flags/stream", () => {
  it("refuses a caller without a token (401)", async () => {
    const res = await call("GET", "/api/flags/stream");
    expect(res.status).toBe(401);
    expect(res.body.code).toBe("UNAUTHORIZED");
  });

  it("says hello with the current version, then sends a change event per write", async () => {
    const key = uniqueFlagKey("stream");
    await createFlag(admin.access, { key, enabled: false });
    const version = await ruleSetVersion();
    const stream = await openStream(bob.access);
    try {
      expect(stream.response.status).toBe(200);
      expect(stream.response.headers.get("content-type")).toContain("text/event-stream");
      expect(await stream.next()).toEqual({ event: "hello", id: String(version), data: { version } });

      await toggleFlag(admin.access, key, true);
      const next = await ruleSetVersion();
      const change = await stream.next();
      expect(change.event).toBe("change");
      expect(change.id).toBe(String(next));
      expect(change.data).toMatchObject({ version: next, changes: [{ subject: "flag", key, action: "toggled" }] });
    } finally {
      await stream.close();
    }
  });

  it("replays the missed changes after Last-Event-ID, in order (and says hello to an up-to-date client)", async () => {
    // A viewer's stream carries every change (a plain user's carries only its own: see below).
    const key = uniqueFlagKey("replay");
    await createFlag(admin.access, { key, enabled: false });
    const seen = await ruleSetVersion();
    await toggleFlag(admin.access, key, true);
    await setOverride(admin.access, key, alice.id, { value: false, reason: "opted out" });
    await toggleFlag(admin.access, key, false);
    const latest = await ruleSetVersion();
    expect(latest).toBe(seen + 3);

    const stream = await openStream(viewer.access, { "last-event-id": String(seen) });
    try {
      const events = [await stream.next(), await stream.next(), await stream.next()];
      expect(events.map((e) => [e.event, e.id])).toEqual([
        ["change", String(seen + 1)],
        ["change", String(seen + 2)],
        ["change", String(seen + 3)],
      ]);
      expect(events.map((e) => (e.data as FlagChangeEvent).changes.map((c) => [c.subject, c.key, c.action]))).toEqual([
        [["flag", key, "toggled"]],
        [["flag_override", `${key}/${alice.id}`, "set"]],
        [["flag", key, "toggled"]],
      ]);
      expect(await stream.maybeNext(200)).toBeUndefined();
    } finally {
      await stream.close();
    }

    const upToDate = await openStream(bob.access, { "last-event-id": String(latest) });
    try {
      expect(await upToDate.next()).toMatchObject({ event: "hello", id: String(latest) });
    } finally {
      await upToDate.close();
    }
  });

  it("carries to a plain user only its own overrides, flag keys and versions; viewers and admins get everything", async () => {
    const key = uniqueFlagKey("private");
    await createFlag(admin.access, { key, enabled: false });
    const seen = await ruleSetVersion();
    await setOverride(admin.access, key, alice.id, { value: true, reason: "alice's beta" });
    await setOverride(admin.access, key, bob.id, { value: true, reason: "bob's beta" });
    const segment = await call("POST", "/api/admin/flags/segments", {
      token: admin.access,
      json: { name: "alice's cohort", constraints: [{ contextName: "userId", operator: "IN", values: [alice.id] }] },
    });
    expect(segment.status).toBe(201);
    await toggleFlag(admin.access, key, true);
    const changesOf = (events: { data: unknown }[]) =>
      events.map((e) => (e.data as FlagChangeEvent).changes.map((c) => [c.subject, c.key, c.action]));

    const own = await openStream(bob.access, { "last-event-id": String(seen) });
    const everything = await openStream(viewer.access, { "last-event-id": String(seen) });
    try {
      const replayed = [await own.next(), await own.next(), await own.next(), await own.next()];
      expect(replayed.map((e) => [e.event, e.id])).toEqual([1, 2, 3, 4].map((n) => ["change", String(seen + n)]));
      expect(changesOf(replayed)).toEqual([
        [],
        [["flag_override", `${key}/${bob.id}`, "set"]],
        [],
        [["flag", key, "toggled"]],
      ]);
      expect(JSON.stringify(replayed)).not.toContain(alice.id);
      expect(JSON.stringify(replayed)).not.toContain("cohort");

      const all = [await everything.next(), await everything.next(), await everything.next(), await everything.next()];
      expect(changesOf(all)).toEqual([
        [["flag_override", `${key}/${alice.id}`, "set"]],
        [["flag_override", `${key}/${bob.id}`, "set"]],
        [["flag_segment", String(segment.body.id), "created"]],
        [["flag", key, "toggled"]],
      ]);

      // Live events are filtered the same way: bob learns the version, not alice's override.
      await setOverride(admin.access, key, alice.id, { value: false, reason: "alice opted out" });
      const live = await own.next();
      expect(live).toMatchObject({ event: "change", id: String(seen + 5), data: { version: seen + 5, changes: [] } });
      expect(changesOf([await everything.next()])).toEqual([[["flag_override", `${key}/${alice.id}`, "set"]]]);
    } finally {
      await own.close();
      await everything.close();
    }
  });

  it("sends reset when Last-Event-ID is older than the events the hub keeps", async () => {
    const key = uniqueFlagKey("reset");
    await createFlag(admin.access, { key, enabled: false });
    const seen = await ruleSetVersion();
    await toggleFlag(admin.access, key, true);
    await toggleFlag(admin.access, key, false);
    const latest = await ruleSetVersion();
    // The hub keeps only the newest events: drop those up to seen + 1, as trimming does after enough writes.
    await runInDurableObject(flagHub(workerEnv), async (_hub: FlagHub, state) => {
      const keys = [...(await state.storage.list({ prefix: "event:" })).keys()];
      await state.storage.delete(keys.filter((k) => Number(k.slice("event:".length)) <= seen + 1));
    });

    const stream = await openStream(bob.access, { "last-event-id": String(seen) });
    try {
      const reset = await stream.next();
      expect(reset.event).toBe("reset");
      expect(reset.id).toBe(String(latest));
      expect(reset.data).toMatchObject({ version: latest });
    } finally {
      await stream.close();
    }
  });
});

describe("ended sessions on the flag routes", () => {
  const evaluates = async (credential: { token?: string; apiKey?: string }) =>
    (
      await call("POST", "/api/flags/evaluate", {
        token: credential.token,
        headers: credential.apiKey ? { "x-api-key": credential.apiKey } : {},
        json: { context: {} },
      })
    ).status;
  const sessionOf = (token: string) => JSON.parse(atob(token.split(".")[1] as string)).sid as string;

  /** Evaluates (so this isolate remembers the caller), ends or changes its access, and expects 401 at once. */
  async function refusedAtOnce(credential: { token?: string; apiKey?: string }, end: () => Promise<number>) {
    expect(await evaluates(credential)).toBe(200);
    expect([200, 204]).toContain(await end());
    expect(await evaluates(credential)).toBe(401);
  }

  it("a logout, or a session ended from another one, is refused at once (not after the caller cache's 30 s)", async () => {
    const user = await signedInUser("user");
    await refusedAtOnce(
      { token: user.access },
      async () => (await call("POST", "/api/auth/logout", { token: user.access })).status,
    );

    const other = await signedInUser("user");
    const second = await call("POST", "/api/auth/login", {
      json: { email: other.email, password: other.password },
      headers: { "cf-connecting-ip": "198.51.100.77" },
    });
    const path = `/api/auth/sessions/${sessionOf(other.access)}`;
    await refusedAtOnce(
      { token: other.access },
      async () => (await call("DELETE", path, { token: second.body.access_token })).status,
    );
  });

  it("a deactivation, a role change or a deletion by an admin is refused at once", async () => {
    const [deactivated, promoted, deleted] = await Promise.all([signedInUser(), signedInUser(), signedInUser()]);
    await refusedAtOnce(
      { token: deactivated.access },
      async () => (await call("POST", `/api/admin/users/${deactivated.id}/deactivate`, { token: admin.access })).status,
    );
    await refusedAtOnce(
      { token: promoted.access },
      async () =>
        (
          await call("PATCH", `/api/admin/users/${promoted.id}/role`, {
            token: admin.access,
            json: { role: "viewer" },
          })
        ).status,
    );
    await refusedAtOnce(
      { token: deleted.access },
      async () => (await call("DELETE", `/api/admin/users/${deleted.id}`, { token: admin.access })).status,
    );
  });

  it("a password change, a password reset and a revoked API key are refused at once", async () => {
    const [changed, reset, keyed] = await Promise.all([signedInUser(), signedInUser(), signedInUser()]);
    await refusedAtOnce(
      { token: changed.access },
      async () =>
        (
          await call("POST", "/api/users/me/change-password", {
            token: changed.access,
            json: { current_password: changed.password, new_password: "Quartz-Meadow-Falcon-97" },
          })
        ).status,
    );
    await refusedAtOnce({ token: reset.access }, async () => {
      const issued = await call("POST", `/api/admin/users/${reset.id}/password-reset`, { token: admin.access });
      const token = issued.body.reset_token;
      return (
        await call("POST", "/api/auth/password-reset", { json: { token, new_password: "Quartz-Meadow-Falcon-98" } })
      ).status;
    });
    const created = await call("POST", "/api/users/me/api-keys", { token: keyed.access, json: { name: "flags" } });
    await refusedAtOnce(
      { apiKey: created.body.key },
      async () => (await call("DELETE", `/api/users/me/api-keys/${created.body.id}`, { token: keyed.access })).status,
    );
  });

  it("a refresh token replayed after its grace window ends its session at once", async () => {
    const user = await signedInUser();
    const rotated = await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh } });
    expect(rotated.status).toBe(200);
    expect(await evaluates({ token: rotated.body.access_token })).toBe(200);
    // As if the spent token were presented again a minute later (past REFRESH_REUSE_GRACE_SECONDS).
    await db.execute(
      sql`update refresh_tokens set used_at = now() - interval '1 minute' where token_hash = ${await sha256Hex(user.refresh)}`,
    );
    expect((await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh } })).status).toBe(401);
    expect(await evaluates({ token: rotated.body.access_token })).toBe(401);
  });

  it("an open stream re-checks its caller every STREAM_RECHECK_MS (at most 30 s) and ends when the session has", async () => {
    expect(STREAM_RECHECK_MS).toBeLessThanOrEqual(30_000);
    const ticks: (() => Promise<void>)[] = [];
    vi.spyOn(streamClock, "every").mockImplementation((ms, tick) => {
      expect(ms).toBe(STREAM_RECHECK_MS);
      ticks.push(tick);
      return () => undefined;
    });
    const user = await signedInUser();
    const key = uniqueFlagKey("recheck");
    await createFlag(admin.access, { key, enabled: false });
    const stream = await openStream(user.access);
    try {
      expect((await stream.next()).event).toBe("hello");
      expect(ticks).toHaveLength(1);
      const tick = ticks[0] as () => Promise<void>;
      await tick(); // still signed in: the stream goes on
      await toggleFlag(admin.access, key, true);
      expect((await stream.next()).event).toBe("change");

      // The session ends elsewhere (another isolate, or straight in the database): the next check ends the stream.
      await db.execute(sql`update auth_sessions set revoked_at = now() where id = ${sessionOf(user.access)}`);
      await tick();
      const end = await stream.next();
      expect(end.event).toBe("end");
      expect(end.data).toMatchObject({ code: "UNAUTHORIZED", reason: expect.stringMatching(/session has ended/) });
      await expect(stream.next()).rejects.toThrow(/the stream ended/);
    } finally {
      await stream.close();
    }
  });

  it("an open stream ends when its caller's role changes (an admin's API key after the owner's demotion)", async () => {
    const ticks: (() => Promise<void>)[] = [];
    vi.spyOn(streamClock, "every").mockImplementation((_ms, tick) => {
      ticks.push(tick);
      return () => undefined;
    });
    const owner = await signedInUser("admin");
    const created = await call("POST", "/api/users/me/api-keys", { token: owner.access, json: { name: "console" } });
    expect(created.status).toBe(201);
    const stream = await openStream(undefined, { "x-api-key": created.body.key });
    try {
      expect((await stream.next()).event).toBe("hello");
      const demoted = await call("PATCH", `/api/admin/users/${owner.id}/role`, {
        token: admin.access,
        json: { role: "user" },
      });
      expect(demoted.status).toBe(200);
      await (ticks[0] as () => Promise<void>)();
      const end = await stream.next();
      expect(end).toMatchObject({ event: "end", data: { code: "FORBIDDEN", reason: expect.stringMatching(/role/) } });
    } finally {
      await stream.close();
    }
  });

  it("the stream's clock ticks every STREAM_RECHECK_MS until stopped (fake timers)", () => {
    vi.useFakeTimers();
    try {
      const tick = vi.fn(async () => undefined);
      const stop = streamClock.every(STREAM_RECHECK_MS, tick);
      vi.advanceTimersByTime(STREAM_RECHECK_MS - 1);
      expect(tick).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(tick).toHaveBeenCalledTimes(1);
      vi.advanceTimersByTime(STREAM_RECHECK_MS);
      expect(tick).toHaveBeenCalledTimes(2);
      stop();
      vi.advanceTimersByTime(10 * STREAM_RECHECK_MS);
      expect(tick).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("exposures", () => {
  it("records sampled evaluations as flag_exposure events, and daily counts the metrics API shows", async () => {
    const key = uniqueFlagKey("exposure");
    await createFlag(admin.access, {
      key,
      type: "string",
      enabled: true,
      defaultValue: "plain",
      variants: [{ name: "blue", weight: 1000, payload: { type: "string", value: "navy" } }],
    });
    await setOverride(admin.access, key, alice.id, { value: "emerald", reason: "design review" });
    const app = createApp();
    app.get("/__probe/exposed", requireUser, requireFlag(key), (c) => c.json({ served: true }));

    const writes = vi.spyOn(workerEnv.ANALYTICS, "writeDataPoint");
    const exposures = () =>
      writes.mock.calls.map(([point]) => point).filter((point) => point?.indexes?.[0] === EXPOSURE_INDEX);
    const traced = (requestId: string, traceId: string) => ({
      "x-request-id": requestId,
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
    });
    const everything = { FLAGS_EXPOSURE_SAMPLE_RATE: "1" };

    // Rate 0: nothing is recorded.
    expect((await evaluateFor(bob.access, {}, { overrides: { FLAGS_EXPOSURE_SAMPLE_RATE: "0" } })).status).toBe(200);
    const gatedAtZero = await call("GET", "/__probe/exposed", {
      app,
      undocumented: true,
      token: bob.access,
      overrides: { FLAGS_EXPOSURE_SAMPLE_RATE: "0" },
    });
    expect(gatedAtZero.status).toBe(200);
    expect(exposures()).toEqual([]);

    // Rate 1, the evaluate route: one event per flag (at most 100 a request), all carrying the caller's ids.
    const requestId = `rt-exposure-${crypto.randomUUID()}`;
    const traceId = crypto.randomUUID().replaceAll("-", "");
    const res = await evaluateFor(alice.access, {}, { overrides: everything, headers: traced(requestId, traceId) });
    expect(res.status).toBe(200);
    const held = heldSnapshot() as Snapshot;
    expect(held.version).toBe(res.body.version);
    const recorded = held.flags.map((flag) => flag.key).slice(0, 100);
    const routePoints = exposures();
    expect(routePoints.map((p) => p?.blobs?.[2])).toEqual(recorded);
    for (const point of routePoints) {
      expect(point?.blobs?.slice(5)).toEqual([alice.id, requestId, traceId]);
    }
    const aliceInRoute = recorded.includes(key);
    if (aliceInRoute) {
      expect(routePoints.find((p) => p?.blobs?.[2] === key)?.blobs).toEqual([
        EXPOSURE_INDEX,
        config.ENVIRONMENT,
        key,
        "override",
        "OVERRIDE",
        alice.id,
        requestId,
        traceId,
      ]);
    }

    // Rate 1, one flag through requireFlag: exactly one event each, with variant and reason.
    writes.mockClear();
    const probes = [
      { user: alice, variant: "override", reason: "OVERRIDE" },
      { user: bob, variant: "blue", reason: "DEFAULT" },
      { user: bob, variant: "blue", reason: "DEFAULT" },
    ];
    for (const probe of probes) {
      const id = `rt-probe-${crypto.randomUUID()}`;
      const trace = crypto.randomUUID().replaceAll("-", "");
      const gated = await call("GET", "/__probe/exposed", {
        app,
        undocumented: true,
        token: probe.user.access,
        overrides: everything,
        headers: traced(id, trace),
      });
      expect(gated.status).toBe(200);
      const points = exposures();
      expect(points).toHaveLength(1);
      expect(points[0]).toMatchObject({
        indexes: [EXPOSURE_INDEX],
        blobs: [EXPOSURE_INDEX, config.ENVIRONMENT, key, probe.variant, probe.reason, probe.user.id, id, trace],
        doubles: [1, 1],
      });
      writes.mockClear();
    }

    // The daily counts: flushed to Postgres, shown per variant and day to admins and viewers.
    await flushExposures(config);
    const today = new Date().toISOString().slice(0, 10);
    const overrideCount = 1 + (aliceInRoute ? 1 : 0);
    const variants = {
      blue: { sampled: 2, estimated: 2 },
      override: { sampled: overrideCount, estimated: overrideCount },
    };
    for (const reader of [admin, viewer]) {
      const metrics = await call("GET", flagPath(key, "/metrics"), { token: reader.access });
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatchObject({ key, totals: variants, days: [{ day: today, variants }] });
    }
    expect((await call("GET", flagPath(key, "/metrics"), { token: bob.access })).status).toBe(403);
  });
});

describe("requireFlag", () => {
  it("hides a route (404 problem) while its flag is off or missing, and serves it when on", async () => {
    const key = uniqueFlagKey("gate");
    const missing = uniqueFlagKey("missing");
    await createFlag(admin.access, { key, enabled: false });
    const app = createApp();
    app.get("/__probe/gated", requireFlag(key), (c) => c.json({ served: true }));
    app.get("/__probe/missing", requireFlag(missing), (c) => c.json({ served: true }));

    const off = await call("GET", "/__probe/gated", { app, undocumented: true });
    expect(off.status).toBe(404);
    expect(off.headers.get("content-type")).toContain("application/problem+json");
    expect(off.body).toMatchObject({ status: 404, code: "NOT_FOUND" });
    const absent = await call("GET", "/__probe/missing", { app, undocumented: true });
    expect(absent.status).toBe(404);
    expect(absent.body.code).toBe("NOT_FOUND");

    await toggleFlag(admin.access, key, true);
    const on = await call("GET", "/__probe/gated", { app, undocumented: true });
    expect(on.status).toBe(200);
    expect(on.body).toEqual({ served: true });
  });

  it("targets users when placed after requireUser", async () => {
    const key = uniqueFlagKey("targeted");
    await createFlag(admin.access, {
      key,
      enabled: true,
      strategies: [{ name: "userWithId", parameters: { userIds: alice.id } }],
    });
    const app = createApp();
    app.get("/__probe/targeted", requireUser, requireFlag(key), (c) => c.json({ served: true }));
    app.get("/__probe/targeted-before-auth", requireFlag(key), requireUser, (c) => c.json({ served: true }));

    expect((await call("GET", "/__probe/targeted", { app, undocumented: true, token: alice.access })).status).toBe(200);
    expect((await call("GET", "/__probe/targeted", { app, undocumented: true, token: bob.access })).status).toBe(404);
    expect((await call("GET", "/__probe/targeted", { app, undocumented: true })).status).toBe(401);
    // Before sign-in nobody is known yet, so even Alice is not targeted.
    expect(
      (await call("GET", "/__probe/targeted-before-auth", { app, undocumented: true, token: alice.access })).status,
    ).toBe(404);
  });
});

describe("cron jobs", () => {
  it("flags-reconcile republishes a rule set whose publish was lost, so KV catches up", async () => {
    const key = uniqueFlagKey("reconcile");
    await createFlag(admin.access, { key, enabled: true });
    const published = await ruleSetVersion();
    expect((await kvState()).version).toBe(published);

    // A write whose hand-off to the hub was lost: Postgres moved on, KV did not.
    await db.execute(sql`update flag_state set version = version + 1 where id = 1`);
    const lost = published + 1;
    expect((await kvState()).version).toBe(published);

    expect(await runCronJob("*/5 * * * *", "flags-reconcile")).toBe("ok");
    const kv = await kvState();
    expect(kv.version).toBe(lost);
    expect(kv.snapshot?.version).toBe(lost);
    expect(kv.snapshot?.flags.some((flag) => flag.key === key)).toBe(true);
    expect(await flagHub(workerEnv).publishedVersion()).toBe(lost);
    expect(await reconcileFlagSnapshot(workerEnv, config)).toEqual({ republished: false });

    // A client whose last event precedes the version never announced must re-read everything.
    const stream = await openStream(bob.access, { "last-event-id": String(published) });
    try {
      expect(await stream.next()).toMatchObject({ event: "reset", id: String(lost) });
    } finally {
      await stream.close();
    }
  });

  it("flags-overrides-cleanup deletes expired overrides, which then stop being listed", async () => {
    const key = uniqueFlagKey("cleanup");
    await createFlag(admin.access, { key, enabled: false });
    await setOverride(admin.access, key, alice.id, { value: true, reason: "still running" });
    const expired = `expired-${crypto.randomUUID()}`;
    await db.execute(sql`
      insert into flag_overrides (flag_key, user_id, value, reason, expires_at)
      values (${key}, ${expired}, 'true'::jsonb, 'trial ended', now() - interval '1 hour')`);
    const listed = async () => {
      const res = await call("GET", flagPath(key, "/overrides"), { token: viewer.access });
      expect(res.status).toBe(200);
      return (res.body.items as { userId: string }[]).map((o) => o.userId).sort();
    };
    expect(await listed()).toEqual([alice.id, expired].sort());
    const before = await ruleSetVersion();

    expect(await runCronJob("30 3 * * *", "flags-overrides-cleanup")).toBe("ok");
    expect(await listed()).toEqual([alice.id]);
    const left = await queryRows(
      db,
      sql`select 1 from flag_overrides where flag_key = ${key} and user_id = ${expired}`,
    );
    expect(left).toEqual([]);

    // Recorded and published like any other write.
    const version = await ruleSetVersion();
    expect(version).toBeGreaterThan(before);
    expect((await kvState()).version).toBe(version);
    const history = await call("GET", flagPath(key, "/history"), { token: viewer.access });
    expect(history.body.items).toEqual(
      expect.arrayContaining([expect.objectContaining({ key: `${key}/${expired}`, action: "expired", actorId: null })]),
    );
    // The active override still applies.
    expect((await evaluateFor(alice.access)).body.flags[key]).toMatchObject({ enabled: true, reason: "OVERRIDE" });
  });
});

describe("flag operational metrics", () => {
  it("counts a flag whose rules cannot be compiled in flag_rules_broken_total (the rule set's compile hook)", async () => {
    const before = await metricValue("flag_rules_broken_total");
    const ctx = createExecutionContext();
    snapshotSources(workerEnv, config, ctx).onBrokenFlag?.("some-flag", 1);
    await waitOnExecutionContext(ctx);
    expect(await metricValue("flag_rules_broken_total")).toBe(before + 1);
  });

  it("counts a committed write whose snapshot the FlagHub never took in flag_publish_failures_total", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const before = await metricValue("flag_publish_failures_total");
    const unreachable = {
      idFromName: (name: string) => workerEnv.FLAG_HUB.idFromName(name),
      get: () => ({ publish: () => Promise.reject(new Error("hub unreachable")) }),
    };
    const snapshot = await buildSnapshot(db);
    const propagated = await metricValue("flag_propagation_seconds_count");
    await publishCommitted({ ...workerEnv, FLAG_HUB: unreachable } as unknown as Env, {
      result: undefined,
      version: snapshot.version,
      snapshot,
      changes: [{ subject: "flag", key: uniqueFlagKey("lost"), action: "updated", before: null, after: null }],
      committedAt: Date.now(),
    });
    expect(await metricValue("flag_publish_failures_total")).toBe(before + 1);
    // Not at the hub: no propagation observed (yet).
    expect(await metricValue("flag_propagation_seconds_count")).toBe(propagated);
  });
});

describe("flag_propagation_seconds", () => {
  const observed = () => metricValue("flag_propagation_seconds_count");

  it("is observed once per write, when the write's version first reaches the FlagHub", async () => {
    const before = await observed();
    const key = uniqueFlagKey("propagation");
    await createFlag(admin.access, { key, enabled: false });
    await toggleFlag(admin.access, key, true);
    expect(await observed()).toBe(before + 2);

    // Handing over a version the hub holds already (a retry, or a newer write got there first) observes nothing.
    const snapshot = await buildSnapshot(db);
    expect(await flagHub(workerEnv).publishedVersion()).toBe(snapshot.version);
    await publishCommitted(workerEnv, {
      result: undefined,
      version: snapshot.version,
      snapshot,
      changes: [{ subject: "flag", key, action: "updated", before: null, after: null }],
      committedAt: Date.now(),
    });
    expect(await observed()).toBe(before + 2);
  });

  it("is observed from the commit when the reconcile cron brings a write whose publish was lost", async () => {
    await createFlag(admin.access, { key: uniqueFlagKey("late"), enabled: true });
    const before = await observed();
    const withinMinute = () => metricValue('flag_propagation_seconds_bucket{le="60"}');
    const seconds = () => metricValue("flag_propagation_seconds_sum");
    const [minuteBefore, secondsBefore] = [await withinMinute(), await seconds()];
    // A write committed ten minutes ago whose hand-off was lost: Postgres moved on, the hub did not.
    await db.execute(
      sql`update flag_state set version = version + 1, updated_at = now() - interval '10 minutes' where id = 1`,
    );

    expect(await runCronJob("*/5 * * * *", "flags-reconcile")).toBe("ok");
    expect(await observed()).toBe(before + 1);
    // The sample is the ten minutes since the commit, not the cron's own run.
    expect(await withinMinute()).toBe(minuteBefore);
    expect((await seconds()) - secondsBefore).toBeGreaterThanOrEqual(600);

    // Brought once: the next run has nothing to republish and observes nothing.
    expect(await runCronJob("*/5 * * * *", "flags-reconcile")).toBe("ok");
    expect(await observed()).toBe(before + 1);
  });
});

describe("flag_evaluations_total", () => {
  const counted = (via: string) => metricValue(`flag_evaluations_total{via="${via}"}`);

  it("counts the flags a POST /api/flags/evaluate evaluated, as one event per request", async () => {
    await createFlag(admin.access, { key: uniqueFlagKey("counted"), enabled: true });
    const before = await counted("evaluate");
    const writes = vi.spyOn(workerEnv.ANALYTICS, "writeDataPoint");
    const res = await evaluateFor(alice.access);
    const events = writes.mock.calls.filter(([p]) => p?.blobs?.[0] === "flag_evaluations_total").map(([p]) => p);
    writes.mockRestore();
    expect(res.status).toBe(200);
    const flags = Object.keys(res.body.flags).length;
    expect(flags).toBeGreaterThan(1);
    expect(events.map((p) => [p?.blobs?.[2], p?.doubles?.[0]])).toEqual([["evaluate", flags]]);
    expect(await counted("evaluate")).toBe(before + flags);
  });

  it("counts OFREP evaluations: one for a single flag, every flag for bulk (304 included), none for an unknown key", async () => {
    const key = uniqueFlagKey("ofrep-counted");
    await createFlag(admin.access, { key, enabled: true });
    const before = await counted("ofrep");
    const ofrep = (path: string, headers: Record<string, string> = {}) =>
      call("POST", `/ofrep/v1/evaluate/flags${path}`, { token: alice.access, headers, json: { context: {} } });

    expect((await ofrep(`/${encodeURIComponent(key)}`)).status).toBe(200);
    expect(await counted("ofrep")).toBe(before + 1);
    expect((await ofrep(`/${encodeURIComponent(uniqueFlagKey("missing"))}`)).status).toBe(404);
    expect(await counted("ofrep")).toBe(before + 1);

    const bulk = await ofrep("");
    expect(bulk.status).toBe(200);
    const flags = (bulk.body.flags as unknown[]).length;
    expect(await counted("ofrep")).toBe(before + 1 + flags);
    const again = await ofrep("", { "if-none-match": String(bulk.headers.get("etag")) });
    expect(again.status).toBe(304);
    expect(await counted("ofrep")).toBe(before + 1 + 2 * flags);
  });
});
