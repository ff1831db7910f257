import type { Redis } from "@upstash/redis/cloudflare";
import { sha256Hex } from "../auth/crypto.ts";
import type { Config } from "../config.ts";
import type { Env } from "../env.ts";
import { type MetricEvent, recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { sleep } from "../sleep.ts";
import { MemoryTier } from "./memory.ts";
import { createRedis } from "./redis.ts";

// The multi-level cache (docs/caching.md): isolate memory (L1) in front of Upstash Redis (L2), in front
// of the loader. It never fails a request: a Redis error is counted and the loader runs instead.

/** Where a value came from: isolate memory, Redis, a load already running, or the loader itself. */
export type Source = "l1" | "l2" | "shared" | "loader";

interface Served<T> {
  value: T;
  from: Source;
}

/**
 * Values must be plain JSON data (no Date, Map, undefined or null), treated as read-only: the tiers
 * store JSON text, so what a hit returns is what JSON.parse(JSON.stringify(value)) gives.
 */
export interface Cache<T> {
  /** The value under key from the nearest tier that holds it, else from the loader (then stored). */
  getOrLoad(key: string, loader: () => Promise<T>): Promise<T>;
  /** getOrLoad, also saying where the value came from. */
  lookup(key: string, loader: () => Promise<T>): Promise<Served<T>>;
}

export interface CacheOptions<T> {
  /** Names the data (embedding, search): part of every key, and the `namespace` label of the metrics. */
  namespace: string;
  ttlSeconds: number;
  /** Isolate-memory lifetime; default min(ttl, 60 s), short so that isolates converge on what Redis holds. */
  l1TtlSeconds?: number;
  /** Whether a loaded value may be stored (e.g. not a degraded answer); default every value. */
  cacheable?: (value: T) => boolean;
  /** The isolate state to use; tests pass a fresh one to play a second isolate. */
  isolate?: IsolateCache;
}

/** What the requests served by one isolate share. */
interface IsolateCache {
  memory: MemoryTier;
  /** Misses being served now, by storage key: concurrent misses join one load. */
  flights: Map<string, Promise<Served<unknown>>>;
  /** After a Redis error, L2 is skipped until then (ms since the epoch). */
  l2PausedUntil: number;
}

export const newIsolateCache = (maxEntries: number): IsolateCache => ({
  memory: new MemoryTier(maxEntries),
  flights: new Map(),
  l2PausedUntil: 0,
});

const L1_DEFAULT_TTL_SECONDS = 60;
// Longer keys are replaced by "sha256:" + 64 hex digits (71 characters), so never equal to a kept key.
const MAX_RAW_KEY = 64;
// Across isolates one loader runs under a lock; the others look for its value a few times (1 s in
// all), then load themselves. The lock outlives the waits, so a crashed holder costs one second.
const LOCK_MS = 5_000;
const POLL_DELAYS_MS = [50, 100, 200, 300, 350];
// A load another request of this isolate runs is joined, but not awaited for ever: that request may be
// cancelled, and its promise would then never settle.
const JOIN_WAIT_MS = 5_000;
// Each failing Redis call can cost seconds (timeout and retries): after one, use memory only for a while.
const L2_PAUSE_MS = 30_000;

// Module level: it lives as long as the isolate and serves all its requests.
let isolateCache: IsolateCache | undefined;

/** `va:cache:<namespace>:<key>`, the key hashed (SHA-256) when longer than 64 characters. */
export async function storageKey(namespace: string, key: string): Promise<string> {
  return `va:cache:${namespace}:${key.length <= MAX_RAW_KEY ? key : `sha256:${await sha256Hex(key)}`}`;
}

const lockKey = (id: string) => `va:cache-lock:${id.slice("va:cache:".length)}`;

export function createCache<T>(
  config: Config,
  env: Env,
  options: CacheOptions<T>,
  ctx?: Pick<ExecutionContext, "waitUntil">,
): Cache<T> {
  isolateCache ??= newIsolateCache(config.CACHE_L1_MAX_ENTRIES);
  const state = options.isolate ?? isolateCache;
  const redis = createRedis(config);
  const { namespace, ttlSeconds } = options;
  const l1TtlMs = Math.min(options.l1TtlSeconds ?? L1_DEFAULT_TTL_SECONDS, ttlSeconds) * 1000;
  const lookupEvent = (tier: "l1" | "l2", outcome: "hit" | "miss" | "error"): MetricEvent => ({
    name: "cache_lookups_total",
    labels: { namespace, tier, outcome },
    value: 1,
  });
  const loadEvent = (outcome: "ok" | "error" | "shared"): MetricEvent => ({
    name: "cache_loads_total",
    labels: { namespace, outcome },
    value: 1,
  });

  const pauseL2 = (error: unknown) => {
    if (state.l2PausedUntil <= Date.now()) {
      log("warn", "L2 cache (Redis) failing: isolate memory only for a while", {
        namespace,
        pause_ms: L2_PAUSE_MS,
        error: describeError(error),
      });
    }
    state.l2PausedUntil = Date.now() + L2_PAUSE_MS;
  };
  // Writes go out after the response when there is a ctx; their failure only pauses L2.
  const background = async (write: () => Promise<unknown>) => {
    const done = write().catch(pauseL2);
    if (ctx) ctx.waitUntil(done);
    else await done;
  };
  // A value found in Redis fills isolate memory on its way back.
  const servedFromL2 = (id: string, value: T): Served<T> => {
    state.memory.set(id, JSON.stringify(value), l1TtlMs, Date.now());
    return { value, from: "l2" };
  };

  /** Another isolate holds the lock: its value once stored, or null when it gives up or takes too long. */
  async function otherLoad(l2: Redis, id: string): Promise<T | null> {
    for (const delay of POLL_DELAYS_MS) {
      await sleep(delay);
      const [value, lock] = await l2.mget<[T | null, unknown]>(id, lockKey(id));
      if (value !== null) return value;
      // The holder finished without storing (its loader failed or the value was not cacheable).
      if (lock === null) return null;
    }
    return null;
  }

  /** L2 and its lock: the value when found there, else how to load (L2 usable, lock held). */
  async function fromRedis(
    id: string,
    events: MetricEvent[],
  ): Promise<{ found?: Served<T>; l2?: Redis; locked?: boolean }> {
    if (!redis) return {};
    if (state.l2PausedUntil > Date.now()) {
      // Skipped while paused, but counted: the tier could not serve.
      events.push(lookupEvent("l2", "error"));
      return {};
    }
    try {
      const stored = await redis.get<T>(id);
      events.push(lookupEvent("l2", stored === null ? "miss" : "hit"));
      if (stored !== null) return { found: servedFromL2(id, stored) };
      const locked = (await redis.set(lockKey(id), 1, { nx: true, px: LOCK_MS })) !== null;
      const shared = locked ? null : await otherLoad(redis, id);
      if (shared === null) return { l2: redis, locked };
      events.push(loadEvent("shared"));
      return { found: servedFromL2(id, shared) };
    } catch (error) {
      events.push(lookupEvent("l2", "error"));
      pauseL2(error);
      return {};
    }
  }

  async function miss(id: string, loader: () => Promise<T>, events: MetricEvent[]): Promise<Served<T>> {
    const { found, l2, locked } = await fromRedis(id, events);
    if (found) return found;
    const unlock = async () => {
      if (l2 && locked) await background(() => l2.del(lockKey(id)));
    };
    let value: T;
    try {
      value = await loader();
    } catch (error) {
      events.push(loadEvent("error"));
      await unlock();
      throw error;
    }
    events.push(loadEvent("ok"));
    if (!(options.cacheable?.(value) ?? true)) {
      await unlock();
      return { value, from: "loader" };
    }
    const json = JSON.stringify(value);
    state.memory.set(id, json, l1TtlMs, Date.now());
    if (l2) {
      // One round trip, in order: the value is there before waiting isolates see the lock go.
      const pipeline = l2.pipeline().set(id, json, { ex: ttlSeconds });
      await background(() => (locked ? pipeline.del(lockKey(id)) : pipeline).exec());
    }
    return { value, from: "loader" };
  }

  async function lookup(key: string, loader: () => Promise<T>): Promise<Served<T>> {
    const id = await storageKey(namespace, key);
    const events: MetricEvent[] = [];
    try {
      const json = state.memory.get(id, Date.now());
      events.push(lookupEvent("l1", json === undefined ? "miss" : "hit"));
      if (json !== undefined) return { value: JSON.parse(json) as T, from: "l1" };

      const running = state.flights.get(id) as Promise<Served<T>> | undefined;
      const joined = running && (await settledWithin(running, JOIN_WAIT_MS));
      if (joined) {
        events.push(loadEvent("shared"));
        return { value: joined.value, from: "shared" };
      }
      const flight = miss(id, loader, events);
      state.flights.set(id, flight);
      try {
        return await flight;
      } finally {
        if (state.flights.get(id) === flight) state.flights.delete(id);
      }
    } finally {
      await recordMetrics(env, ctx, ...events);
    }
  }

  return {
    lookup,
    getOrLoad: async (key, loader) => (await lookup(key, loader)).value,
  };
}

/** The promise's value, or undefined when it has not settled within ms; rejects as it does. */
async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let stop = () => {};
  const timeout = new Promise<undefined>((resolve) => {
    const timer = setTimeout(resolve, ms);
    stop = () => clearTimeout(timer);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    stop();
  }
}
