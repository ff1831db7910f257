// Whether a credential admitted earlier still admits its user, for connections that outlive their request
// (sockets). The rules of signing in (authenticate.ts) less the role, asked again by id, never by secret.
import { sql } from "drizzle-orm";
import { type Database, queryRows } from "../db/client.ts";
import type { Principal } from "./principal.ts";

/** What a long-lived connection keeps of the credential it was admitted with: ids and expiry, no secret. */
export type HeldCredential = Pick<Principal, "userId" | "sessionId" | "apiKeyId" | "tokenExpiresAt">;

interface LiveRow {
  is_active: boolean;
  deleted_at: string | null;
  session_live: boolean;
  key_live: boolean;
}

/**
 * Why `held` no longer admits its user (the refusal a request would get now), or undefined while it does.
 * An access token's expiry needs no database; the rest is one query, which throws when the database fails.
 */
export async function credentialEnded(
  db: Database,
  held: HeldCredential,
  now = Date.now(),
): Promise<string | undefined> {
  if (held.tokenExpiresAt !== undefined && held.tokenExpiresAt * 1000 <= now) {
    return "The access token has expired; reconnect with a fresh one.";
  }
  const sessionLive = held.sessionId
    ? sql`exists (select 1 from auth_sessions s where s.id = ${held.sessionId} and s.user_id = u.id
              and s.revoked_at is null and s.expires_at > now())`
    : sql`true`;
  const keyLive = held.apiKeyId
    ? sql`exists (select 1 from api_keys k where k.id = ${held.apiKeyId} and k.user_id = u.id
              and k.revoked_at is null and (k.expires_at is null or k.expires_at > now()))`
    : sql`true`;
  const [user] = await queryRows<LiveRow>(
    db,
    sql`select u.is_active, u.deleted_at, ${sessionLive} as session_live, ${keyLive} as key_live
        from users u where u.id = ${held.userId}`,
  );
  if (!user || user.deleted_at) return "The account no longer exists.";
  if (!user.is_active) return "The account is deactivated.";
  if (!user.session_live) return "The session has ended; sign in again.";
  if (!user.key_live) return "The API key has been revoked or has expired.";
  return undefined;
}
