import { and, desc, eq, gt, isNull, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { type Database, queryRows } from "../db/client.ts";
import { authSessions, refreshTokens, users } from "../db/schema/identity.ts";
import { randomToken, sha256Hex } from "./crypto.ts";
import { signAccessToken } from "./jwt.ts";
import type { Role } from "./principal.ts";

type Db = Database;

interface IssuedTokens {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_expires_in: number;
  user: { id: string; email: string; role: Role };
}

interface SessionUser {
  id: string;
  email: string;
  role: Role;
}

async function issue(config: Config, user: SessionUser, sessionId: string, refreshToken: string, expiresAt: Date) {
  const { token, claims } = await signAccessToken(
    { sub: user.id, role: user.role, sid: sessionId },
    { keys: config.JWT_SIGNING_KEYS, ttlSeconds: config.ACCESS_TOKEN_TTL_SECONDS, issuer: config.JWT_ISSUER },
  );
  const tokens: IssuedTokens = {
    access_token: token,
    refresh_token: refreshToken,
    token_type: "Bearer",
    expires_in: config.ACCESS_TOKEN_TTL_SECONDS,
    refresh_expires_in: Math.max(0, Math.floor((expiresAt.getTime() - Date.now()) / 1000)),
    user: { id: user.id, email: user.email, role: user.role },
  };
  return { tokens, claims };
}

/** A login: a new session (refresh family) with its first refresh token, in one statement. */
export async function startSession(
  db: Db,
  config: Config,
  user: SessionUser,
  client: { ip?: string; userAgent?: string },
): Promise<IssuedTokens> {
  const refreshToken = randomToken();
  const expiresAt = new Date(Date.now() + config.SESSION_ABSOLUTE_TIMEOUT_HOURS * 3_600_000);
  const [session] = await db
    .insert(authSessions)
    .values({ userId: user.id, expiresAt, ip: client.ip ?? null, userAgent: client.userAgent ?? null })
    .returning({ id: authSessions.id });
  if (!session) throw new Error("session insert returned nothing");
  await db.insert(refreshTokens).values({ sessionId: session.id, tokenHash: await sha256Hex(refreshToken) });
  return (await issue(config, user, session.id, refreshToken, expiresAt)).tokens;
}

type RefreshOutcome =
  | { kind: "rotated"; tokens: IssuedTokens; userId: string; sessionId: string }
  | { kind: "reused"; userId: string; sessionId: string; ended: EndedSession[] }
  | { kind: "raced"; sessionId: string }
  | { kind: "invalid"; reason: "unknown" | "expired" | "revoked" | "inactive_user" };

/**
 * Rotates a refresh token. The old token is spent and the new one stored in one statement, and only
 * while the session and its user are still valid, so two concurrent refreshes cannot both win.
 * A spent token seen again after the grace window revokes its whole family (reuse detection).
 */
export async function rotateRefreshToken(db: Db, config: Config, presented: string): Promise<RefreshOutcome> {
  const presentedHash = await sha256Hex(presented);
  const next = randomToken();
  const nextHash = await sha256Hex(next);
  const idle = `${config.SESSION_IDLE_TIMEOUT_MINUTES} minutes`;
  const rotated = await queryRows<{
    session_id: string;
    user_id: string;
    email: string;
    role: Role;
    expires_at: string;
  }>(
    db,
    sql`
    with spent as (
      update refresh_tokens t set used_at = now()
      from auth_sessions s join users u on u.id = s.user_id
      where t.token_hash = ${presentedHash} and t.used_at is null and s.id = t.session_id
        and s.revoked_at is null and s.expires_at > now() and s.last_used_at > now() - ${idle}::interval
        and u.is_active and u.deleted_at is null
      returning t.session_id, u.id as user_id, u.email, u.role, s.expires_at
    ), fresh as (
      insert into refresh_tokens (session_id, token_hash) select session_id, ${nextHash} from spent
    ), touched as (
      update auth_sessions set last_used_at = now() where id in (select session_id from spent)
    )
    select session_id, user_id, email, role, expires_at from spent`,
  );
  const row = rotated[0];
  if (row) {
    const user = { id: row.user_id, email: row.email, role: row.role };
    const { tokens } = await issue(config, user, row.session_id, next, new Date(row.expires_at));
    return { kind: "rotated", tokens, userId: row.user_id, sessionId: row.session_id };
  }
  return classifyRefusal(db, config, presentedHash);
}

async function classifyRefusal(db: Db, config: Config, tokenHash: string): Promise<RefreshOutcome> {
  const [found] = await db
    .select({
      sessionId: refreshTokens.sessionId,
      usedAt: refreshTokens.usedAt,
      userId: authSessions.userId,
      revokedAt: authSessions.revokedAt,
      isActive: users.isActive,
      deletedAt: users.deletedAt,
    })
    .from(refreshTokens)
    .innerJoin(authSessions, eq(authSessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, authSessions.userId))
    .where(eq(refreshTokens.tokenHash, tokenHash))
    .limit(1);
  if (!found) return { kind: "invalid", reason: "unknown" };
  if (found.usedAt) {
    const sinceUse = Date.now() - found.usedAt.getTime();
    if (sinceUse <= config.REFRESH_REUSE_GRACE_SECONDS * 1000 && !found.revokedAt) {
      return { kind: "raced", sessionId: found.sessionId };
    }
    const ended = found.revokedAt ? [] : await revokeSession(db, found.sessionId, "refresh_reuse");
    return { kind: "reused", userId: found.userId, sessionId: found.sessionId, ended };
  }
  if (found.revokedAt) return { kind: "invalid", reason: "revoked" };
  if (!found.isActive || found.deletedAt) return { kind: "invalid", reason: "inactive_user" };
  return { kind: "invalid", reason: "expired" };
}

/** Why a session was ended, as stored in auth_sessions.revoked_reason. */
export type RevokeReason =
  | "logout"
  | "user_revoked"
  | "refresh_reuse"
  | "password_changed"
  | "password_reset"
  | "deactivated"
  | "deleted";

/** A session this call ended (not one that had ended already): why, and when it started. */
export interface EndedSession {
  reason: RevokeReason;
  startedAt: Date;
}

/** Ends one session; [] when it had ended already. */
export async function revokeSession(db: Db, sessionId: string, reason: RevokeReason): Promise<EndedSession[]> {
  const revoked = await db
    .update(authSessions)
    .set({ revokedAt: new Date(), revokedReason: reason })
    .where(and(eq(authSessions.id, sessionId), isNull(authSessions.revokedAt)))
    .returning({ startedAt: authSessions.createdAt });
  return revoked.map(({ startedAt }) => ({ reason, startedAt }));
}

/** Ends every live session of the user (those already ended are left as they are). */
export async function revokeAllSessions(db: Db, userId: string, reason: RevokeReason): Promise<EndedSession[]> {
  const revoked = await db
    .update(authSessions)
    .set({ revokedAt: new Date(), revokedReason: reason })
    .where(and(eq(authSessions.userId, userId), isNull(authSessions.revokedAt)))
    .returning({ startedAt: authSessions.createdAt });
  return revoked.map(({ startedAt }) => ({ reason, startedAt }));
}

/** The user's sessions that can still be used (not revoked, not past either timeout). */
export async function listActiveSessions(db: Db, config: Config, userId: string) {
  const idleCutoff = new Date(Date.now() - config.SESSION_IDLE_TIMEOUT_MINUTES * 60_000);
  return db
    .select({
      id: authSessions.id,
      createdAt: authSessions.createdAt,
      lastUsedAt: authSessions.lastUsedAt,
      expiresAt: authSessions.expiresAt,
      ip: authSessions.ip,
      userAgent: authSessions.userAgent,
    })
    .from(authSessions)
    .where(
      and(
        eq(authSessions.userId, userId),
        isNull(authSessions.revokedAt),
        gt(authSessions.expiresAt, new Date()),
        gt(authSessions.lastUsedAt, idleCutoff),
      ),
    )
    .orderBy(desc(authSessions.lastUsedAt));
}
