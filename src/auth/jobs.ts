import { and, isNotNull, lt, or, sql } from "drizzle-orm";
import { createDb, queryRows } from "../db/client.ts";
import { authSessions, passwordResetTokens } from "../db/schema/identity.ts";
import { type Env, requireConfig } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { log } from "../observability/log.ts";
import { purgeExpiredRevocations } from "./revocation/postgres.ts";

/** Every 5 minutes: active sessions and today's active users, as gauges. */
export async function recordIdentityGauges(env: Env): Promise<void> {
  const config = requireConfig(env);
  const [row] = await queryRows<{ sessions: number; dau: number; mau: number }>(
    createDb(config),
    sql`select
      (select count(*)::int from auth_sessions where revoked_at is null and expires_at > now()
         and last_used_at > now() - ${`${config.SESSION_IDLE_TIMEOUT_MINUTES} minutes`}::interval) as sessions,
      (select count(*)::int from user_activity where day = (now() at time zone 'utc')::date) as dau,
      (select count(distinct user_id)::int from user_activity
         where day > (now() at time zone 'utc')::date - 30) as mau`,
  );
  await recordMetrics(
    env,
    undefined,
    { name: "auth_active_sessions", labels: {}, value: row?.sessions ?? 0 },
    { name: "auth_daily_active_users", labels: {}, value: row?.dau ?? 0 },
    { name: "auth_monthly_active_users", labels: {}, value: row?.mau ?? 0 },
  );
}

// Ended sessions and spent reset tokens are kept this long for investigations, then dropped.
const RETENTION_DAYS = 30;

/** Daily: forget expired revocations, long-ended sessions and old reset tokens. */
export async function cleanUpIdentity(env: Env): Promise<void> {
  const db = createDb(requireConfig(env));
  const cutoff = new Date(Date.now() - RETENTION_DAYS * 86_400_000);
  const revocations = await purgeExpiredRevocations(db);
  const sessions = await db
    .delete(authSessions)
    .where(
      or(
        lt(authSessions.expiresAt, cutoff),
        and(isNotNull(authSessions.revokedAt), lt(authSessions.revokedAt, cutoff)),
      ),
    )
    .returning({ id: authSessions.id });
  const resets = await db
    .delete(passwordResetTokens)
    .where(lt(passwordResetTokens.expiresAt, cutoff))
    .returning({ id: passwordResetTokens.id });
  log("info", "identity clean-up", { revocations, sessions: sessions.length, reset_tokens: resets.length });
}
