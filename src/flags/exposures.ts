// Exposure analytics. A sampled share of evaluations becomes one Analytics Engine event each (flag, variant,
// reason, user, request and trace id); the same events are counted per flag, variant and UTC day in isolate
// memory and added to Postgres at most every FLAGS_EXPOSURE_FLUSH_SECONDS, so the request path never waits on
// a database. Counts an isolate held when it was evicted are lost; Analytics Engine keeps every sampled event.
import { sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { createDb } from "../db/client.ts";
import type { Env } from "../env.ts";
import { currentWorkContext } from "../observability/context.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import type { Evaluation } from "./model.ts";

export const EXPOSURE_INDEX = "flag_exposure";
// Analytics Engine takes at most 250 data points per invocation; leave room for the request's metrics.
const MAX_EVENTS_PER_REQUEST = 100;

interface Tally {
  flagKey: string;
  variant: string;
  day: string;
  sampled: number;
  estimated: number;
}

const pending = new Map<string, Tally>();
let lastFlush = Date.now();
let flushing: Promise<void> | undefined;

/**
 * Records the sampled share of these evaluations. `random` is injectable for tests; with a sample rate of 1
 * every evaluation is recorded.
 */
export function recordExposures(
  env: Env,
  config: Config,
  ctx: Pick<ExecutionContext, "waitUntil"> | undefined,
  userId: string | undefined,
  evaluations: Iterable<[string, Evaluation]>,
  random: () => number = Math.random,
): void {
  const rate = config.FLAGS_EXPOSURE_SAMPLE_RATE;
  if (rate <= 0) return;
  const sampled: [string, Evaluation][] = [];
  for (const entry of evaluations) if (rate >= 1 || random() < rate) sampled.push(entry);
  if (!sampled.length) return;
  // Past the per-request cap a random subset stands for all of them, so no flag is always the one left out.
  const chosen = sampled.length > MAX_EVENTS_PER_REQUEST ? pick(sampled, MAX_EVENTS_PER_REQUEST, random) : sampled;
  const weight = (1 / rate) * (sampled.length / chosen.length);
  const work = currentWorkContext();
  const day = new Date().toISOString().slice(0, 10);
  for (const [flagKey, evaluation] of chosen) {
    try {
      env.ANALYTICS.writeDataPoint({
        indexes: [EXPOSURE_INDEX],
        blobs: [
          EXPOSURE_INDEX,
          config.ENVIRONMENT,
          flagKey,
          evaluation.variant.name,
          evaluation.reason,
          userId ?? "",
          work?.requestId ?? "",
          work?.trace.traceId ?? "",
        ],
        doubles: [weight, evaluation.enabled ? 1 : 0],
      });
    } catch (error) {
      log("warn", "exposure event not written", { error: describeError(error) });
    }
    const id = `${flagKey}\u0000${evaluation.variant.name}\u0000${day}`;
    const tally = pending.get(id) ?? { flagKey, variant: evaluation.variant.name, day, sampled: 0, estimated: 0 };
    tally.sampled += 1;
    tally.estimated += weight;
    pending.set(id, tally);
  }
  if (pending.size && Date.now() - lastFlush >= config.FLAGS_EXPOSURE_FLUSH_SECONDS * 1000) {
    const done = flushExposures(config);
    if (ctx) ctx.waitUntil(done);
  }
}

/** Adds the held counts to flag_exposures_daily in one statement; on failure they are kept for the next try. */
export function flushExposures(config: Config): Promise<void> {
  flushing ??= (async () => {
    lastFlush = Date.now();
    const batch = [...pending.values()];
    pending.clear();
    if (!batch.length) return;
    try {
      const rows = sql.join(
        batch.map((t) => sql`(${t.flagKey}, ${t.variant}, ${t.day}::date, ${t.sampled}, ${t.estimated})`),
        sql`, `,
      );
      await createDb(config).execute(sql`
        insert into flag_exposures_daily (flag_key, variant, day, sampled, estimated) values ${rows}
        on conflict (flag_key, variant, day) do update set
          sampled = flag_exposures_daily.sampled + excluded.sampled,
          estimated = flag_exposures_daily.estimated + excluded.estimated`);
    } catch (error) {
      for (const t of batch) {
        const id = `${t.flagKey}\u0000${t.variant}\u0000${t.day}`;
        const kept = pending.get(id);
        if (kept) {
          kept.sampled += t.sampled;
          kept.estimated += t.estimated;
        } else pending.set(id, t);
      }
      log("warn", "exposure counts not stored; kept for the next flush", {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  })().finally(() => {
    flushing = undefined;
  });
  return flushing;
}

/** `count` entries chosen uniformly at random (a partial Fisher-Yates shuffle of `items`, in place). */
function pick<T>(items: T[], count: number, random: () => number): T[] {
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (items.length - i));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items.slice(0, count);
}
