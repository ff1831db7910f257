// The rule set on the request path: compiled once per snapshot version and held in isolate memory; after
// FLAGS_CACHE_TTL_SECONDS one small KV read (the version) says whether a newer snapshot exists. KV is filled by
// the FlagHub (the one publisher) after every write; Postgres is read only when KV holds nothing. When KV or
// Postgres fail, the last good rule set is served. Evaluation itself never touches a database.
import { ApiError } from "../errors.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { compile, logBrokenFlag, type RuleSet } from "./evaluate.ts";
import type { Snapshot } from "./model.ts";

export const KV_SNAPSHOT_KEY = "flags:snapshot";
export const KV_VERSION_KEY = "flags:version";
const KV_TIMEOUT_MS = 2_000;

export interface SnapshotSources {
  kv: KVNamespace;
  /** Builds the snapshot from Postgres (only when KV holds none). */
  loadFromDatabase(): Promise<Snapshot>;
  /** Hands a snapshot read from Postgres to the publisher, so KV gets filled once. */
  publish?(snapshot: Snapshot): void;
  ttlMs: number;
  /** Told when KV could not be read, with what was served instead. */
  onFallback?(served: "last_good" | "database" | "unavailable"): void;
  /** Told once per rule set of each flag whose rules cannot be evaluated (after the default log line). */
  onBrokenFlag?(flagKey: string, flagVersion: number): void;
}

interface Held {
  ruleSet: RuleSet;
  snapshot: Snapshot;
  checkedAt: number;
}

let held: Held | undefined;
let refreshing: Promise<Held> | undefined;
let degraded = false;

/** The current rule set: from memory within the TTL, else after a version check against KV. */
export async function currentRuleSet(sources: SnapshotSources): Promise<RuleSet> {
  if (held && Date.now() - held.checkedAt < sources.ttlMs) return held.ruleSet;
  refreshing ??= refresh(sources).finally(() => {
    refreshing = undefined;
  });
  try {
    return (await refreshing).ruleSet;
  } catch (error) {
    if (held) {
      // Serve the last good rule set, and look again after another TTL rather than on every request.
      held.checkedAt = Date.now();
      sources.onFallback?.("last_good");
      if (!degraded) log("warn", "flag snapshot refresh failed; serving the last good one", failure(error));
      degraded = true;
      return held.ruleSet;
    }
    sources.onFallback?.("unavailable");
    throw new ApiError("NOT_READY", "Feature flags are unavailable: neither KV nor the database answered. Retry.", {
      cause: error,
    });
  }
}

/** Keeps a snapshot this isolate has just written, so its own next read sees it at once. */
export function rememberSnapshot(snapshot: Snapshot): void {
  if (held && held.snapshot.version >= snapshot.version) return;
  held = { ruleSet: compile(snapshot), snapshot, checkedAt: Date.now() };
}

/** The snapshot currently held, if any (export, ETags). */
export const heldSnapshot = (): Snapshot | undefined => held?.snapshot;

/** Drops what this isolate holds (tests, and the outage drill). */
export function forgetSnapshot(): void {
  held = undefined;
  degraded = false;
}

async function refresh(sources: SnapshotSources): Promise<Held> {
  let fromKv: Snapshot | null = null;
  try {
    const kvVersion = await withTimeout(sources.kv.get(KV_VERSION_KEY), "KV version read");
    if (held && kvVersion !== null && Number(kvVersion) <= held.snapshot.version) return settle(held);
    if (kvVersion !== null) fromKv = await withTimeout(sources.kv.get<Snapshot>(KV_SNAPSHOT_KEY, "json"), "KV read");
  } catch (error) {
    // With a rule set held, keep serving it; with none, Postgres is the next source.
    if (held) throw error;
    log("warn", "flag snapshot: KV unreadable, reading Postgres", failure(error));
    sources.onFallback?.("database");
  }
  let snapshot = fromKv;
  if (!snapshot) {
    snapshot = await sources.loadFromDatabase();
    sources.publish?.(snapshot);
  }
  if (held && snapshot.version <= held.snapshot.version) return settle(held);
  const onBrokenFlag = sources.onBrokenFlag;
  const ruleSet = compile(
    snapshot,
    onBrokenFlag && {
      onError(flagKey, flagVersion, message) {
        logBrokenFlag(flagKey, flagVersion, message);
        onBrokenFlag(flagKey, flagVersion);
      },
    },
  );
  held = { ruleSet, snapshot, checkedAt: Date.now() };
  return settle(held);
}

function settle(current: Held): Held {
  current.checkedAt = Date.now();
  if (degraded) log("info", "flag snapshot refresh recovered", { version: current.snapshot.version });
  degraded = false;
  return current;
}

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${KV_TIMEOUT_MS} ms`)), KV_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const failure = (error: unknown) => ({ error: describeError(error) });
