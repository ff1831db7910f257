import { sql } from "drizzle-orm";
import { createDb, queryRows } from "../db/client.ts";
import { type Env, requireConfig } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";

/** Every 5 minutes: voice sessions connected now. Sessions are many objects, so the database counts them. */
export async function recordVoiceGauges(env: Env): Promise<void> {
  const [row] = await queryRows<{ active: number }>(
    createDb(requireConfig(env)),
    sql`select count(*)::int as active from voice_sessions where status = 'active'`,
  );
  await recordMetrics(env, undefined, { name: "voice_sessions_active", labels: {}, value: row?.active ?? 0 });
}
