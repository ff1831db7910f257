// What the admin API shows about one flag over time: its changes and its exposures. Both answer for any key the
// platform has known (a live, archived or deleted flag); a key that never was a flag is NOT_FOUND.
import { and, asc, desc, eq, gte, or, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { flagChanges, flagExposuresDaily, flags } from "../db/schema/flags.ts";
import { ApiError } from "../errors.ts";
import { diffFields } from "./store.ts";

type Counts = { sampled: number; estimated: number };

/** Refuses a key that is neither a stored flag nor the subject of a recorded change (a deleted flag's is). */
async function assertKnownFlag(db: Database, key: string): Promise<void> {
  const [known] = await db
    .select({ key: flags.key })
    .from(flags)
    .where(eq(flags.key, key))
    .union(
      db
        .select({ key: flagChanges.subjectKey })
        .from(flagChanges)
        .where(and(eq(flagChanges.subject, "flag"), eq(flagChanges.subjectKey, key))),
    )
    .limit(1);
  if (!known) throw new ApiError("NOT_FOUND", `No flag with the key ${JSON.stringify(key)} has ever existed.`);
}

/** The changes to a flag and its overrides, newest first, each with the top-level fields it changed. */
export async function flagHistory(db: Database, key: string, limit: number) {
  await assertKnownFlag(db, key);
  const overridesOfKey = `${key.replace(/[\\%_]/g, (m) => `\\${m}`)}/%`;
  const rows = await db
    .select()
    .from(flagChanges)
    .where(or(eq(flagChanges.subjectKey, key), sql`${flagChanges.subjectKey} like ${overridesOfKey}`))
    .orderBy(desc(flagChanges.id))
    .limit(limit);
  return rows.map((row) => ({
    version: row.version,
    subject: row.subject,
    key: row.subjectKey,
    action: row.action,
    actorId: row.actorId,
    at: row.at.toISOString(),
    diff: diffFields(row.before, row.after),
    before: row.before,
    after: row.after,
  }));
}

/** Sampled and estimated exposures of a flag per UTC day and variant since `days` ago (today included). */
export async function flagExposures(db: Database, key: string, days: number) {
  await assertKnownFlag(db, key);
  const since = new Date(Date.now() - (days - 1) * 86_400_000).toISOString().slice(0, 10);
  const rows = await db
    .select()
    .from(flagExposuresDaily)
    .where(and(eq(flagExposuresDaily.flagKey, key), gte(flagExposuresDaily.day, since)))
    .orderBy(asc(flagExposuresDaily.day), asc(flagExposuresDaily.variant));
  const byDay = new Map<string, Record<string, Counts>>();
  const totals: Record<string, Counts> = {};
  for (const row of rows) {
    const day = byDay.get(row.day) ?? {};
    day[row.variant] = { sampled: row.sampled, estimated: row.estimated };
    byDay.set(row.day, day);
    const total = totals[row.variant] ?? { sampled: 0, estimated: 0 };
    total.sampled += row.sampled;
    total.estimated += row.estimated;
    totals[row.variant] = total;
  }
  return { since, days: [...byDay].map(([day, variants]) => ({ day, variants })), totals };
}
