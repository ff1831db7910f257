import type { Config } from "../config.ts";
import { createDb } from "../db/client.ts";
import { userActivity } from "../db/schema/identity.ts";
import type { Env } from "../env.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";

// Users already recorded today by this isolate: at most one write per user per day per isolate.
const seen = new Set<string>();
let seenDay = "";

/** Marks the user active today (the source of daily active users). Never fails the request. */
export async function recordActivity(_env: Env, config: Config, userId: string): Promise<void> {
  const day = new Date().toISOString().slice(0, 10);
  if (day !== seenDay) {
    seen.clear();
    seenDay = day;
  }
  if (seen.has(userId)) return;
  seen.add(userId);
  try {
    await createDb(config).insert(userActivity).values({ userId, day }).onConflictDoNothing();
  } catch (error) {
    seen.delete(userId);
    log("warn", "activity not recorded", { error: describeError(error) });
  }
}
