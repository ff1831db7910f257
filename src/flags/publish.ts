// After a write commits: hand its snapshot to the FlagHub (KV, then the change stream). A failed hand-off never
// undoes the write; the next write or the cron reconcile publishes a newer snapshot instead. Whichever call first
// brings a write's version to the hub observes flag_propagation_seconds for it (docs/flags.md#propagation-time).

import { sql } from "drizzle-orm";
import type { FlagChangeEvent } from "../../workers/flag-hub.ts";
import type { Config } from "../config.ts";
import { createDb, queryRows } from "../db/client.ts";
import type { Env } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { backoffMs } from "../observability/outbound.ts";
import type { Snapshot } from "./model.ts";
import { rememberSnapshot, type SnapshotSources } from "./snapshot-cache.ts";
import { buildSnapshot, type Committed } from "./store.ts";

const PUBLISH_ATTEMPTS = 3;

/** How a hand-off ended: the hub took a version it did not have, already had it (or newer), or was unreachable. */
type Handoff = "new" | "known" | "failed";

/** A write's propagation: from its commit (epoch ms) to now, when the hub has just taken its version. */
const propagation = (committedAtMs: number) => ({
  name: "flag_propagation_seconds" as const,
  labels: {},
  value: Math.max(0, (Date.now() - committedAtMs) / 1000),
});

/** The one FlagHub instance. */
export const flagHub = (env: Env) => env.FLAG_HUB.get(env.FLAG_HUB.idFromName("global"));

/** Publishes a committed write's snapshot and change event; resolves even when the hub cannot be reached. */
export async function publishCommitted(env: Env, committed: Committed<unknown>): Promise<void> {
  const { snapshot } = committed;
  if (!snapshot) return;
  rememberSnapshot(snapshot);
  const event: FlagChangeEvent = {
    version: committed.version,
    at: snapshot.builtAt,
    changes: committed.changes.map(({ subject, key, action, before, after }) => ({
      subject,
      key,
      action,
      ...(subject === "flag_override" ? { userId: overrideOwner(before, after) } : {}),
    })),
  };
  const handoff = await publish(env, snapshot, event);
  const actions = new Map<string, number>();
  for (const change of committed.changes) actions.set(change.action, (actions.get(change.action) ?? 0) + 1);
  await recordMetrics(
    env,
    undefined,
    ...[...actions].map(([action, value]) => ({ name: "flag_writes_total" as const, labels: { action }, value })),
    // "known": a newer snapshot (or the reconcile) got there first and observed what it could.
    ...(handoff === "new" ? [propagation(committed.committedAt)] : []),
    ...(handoff === "failed" ? [{ name: "flag_publish_failures_total" as const, labels: {}, value: 1 }] : []),
  );
}

// The user an override change is about, from its stored state (the key "<flag>/<user>" is ambiguous: keys hold "/").
const overrideOwner = (before: unknown, after: unknown) => ((after ?? before) as { userId?: string } | null)?.userId;

async function publish(env: Env, snapshot: Snapshot, event?: FlagChangeEvent): Promise<Handoff> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await flagHub(env).publish(snapshot, event)) ? "new" : "known";
    } catch (error) {
      if (attempt + 1 >= PUBLISH_ATTEMPTS) {
        log("error", "flag snapshot not published; the cron reconcile will retry", {
          version: snapshot.version,
          error: describeError(error),
        });
        return "failed";
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
    }
  }
}

/** Where the request path finds the rule set: KV first, Postgres only when KV holds none. */
export function snapshotSources(env: Env, config: Config, ctx?: Pick<ExecutionContext, "waitUntil">): SnapshotSources {
  return {
    kv: env.FLAGS_KV,
    ttlMs: config.FLAGS_CACHE_TTL_SECONDS * 1000,
    loadFromDatabase: () => buildSnapshot(createDb(config)),
    publish: (snapshot) => {
      const done = publish(env, snapshot);
      if (ctx) ctx.waitUntil(done);
    },
    onFallback: (served) =>
      void recordMetrics(env, ctx, { name: "flag_snapshot_fallbacks_total", labels: { served }, value: 1 }),
    onBrokenFlag: () => void recordMetrics(env, ctx, { name: "flag_rules_broken_total", labels: {}, value: 1 }),
  };
}

/**
 * Cron: when Postgres is ahead of what the hub published (a lost hand-off), publish the current rule set. The
 * newest write it brings is observed from its transaction's time (flag_state.updated_at); older ones it brings
 * along are not: their commit times are not kept.
 */
export async function reconcileFlagSnapshot(env: Env, config: Config): Promise<{ republished: boolean }> {
  const db = createDb(config);
  const [state] = await queryRows<{ version: string; written_ms: string }>(
    db,
    sql`select version, extract(epoch from updated_at) * 1000 as written_ms from flag_state where id = 1`,
  );
  const published = await flagHub(env).publishedVersion();
  if (!state || Number(state.version) <= published) return { republished: false };
  const snapshot = await buildSnapshot(db);
  const handoff = await publish(env, snapshot);
  // A write that committed meanwhile is in the snapshot, but its time is not the one read above.
  if (handoff === "new" && snapshot.version === Number(state.version)) {
    await recordMetrics(env, undefined, propagation(Number(state.written_ms)));
  }
  return { republished: handoff !== "failed" };
}
