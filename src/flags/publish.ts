// After a write commits: hand its snapshot to the FlagHub (KV, then the change stream). A failed hand-off never
// undoes the write; the next write or the cron reconcile publishes a newer snapshot instead.

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
  const published = await publish(env, snapshot, event);
  const actions = new Map<string, number>();
  for (const change of committed.changes) actions.set(change.action, (actions.get(change.action) ?? 0) + 1);
  await recordMetrics(
    env,
    undefined,
    ...[...actions].map(([action, value]) => ({ name: "flag_writes_total" as const, labels: { action }, value })),
    ...(published ? [] : [{ name: "flag_publish_failures_total" as const, labels: {}, value: 1 }]),
  );
}

// The user an override change is about, from its stored state (the key "<flag>/<user>" is ambiguous: keys hold "/").
const overrideOwner = (before: unknown, after: unknown) => ((after ?? before) as { userId?: string } | null)?.userId;

async function publish(env: Env, snapshot: Snapshot, event?: FlagChangeEvent): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      await flagHub(env).publish(snapshot, event);
      return true;
    } catch (error) {
      if (attempt + 1 >= PUBLISH_ATTEMPTS) {
        log("error", "flag snapshot not published; the cron reconcile will retry", {
          version: snapshot.version,
          error: describeError(error),
        });
        return false;
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

/** Cron: when Postgres is ahead of what the hub published (a lost hand-off), publish the current rule set. */
export async function reconcileFlagSnapshot(env: Env, config: Config): Promise<{ republished: boolean }> {
  const db = createDb(config);
  const [state] = await queryRows<{ version: string }>(db, sql`select version from flag_state where id = 1`);
  const published = await flagHub(env).publishedVersion();
  if (Number(state?.version ?? 0) <= published) return { republished: false };
  return { republished: await publish(env, await buildSnapshot(db)) };
}
