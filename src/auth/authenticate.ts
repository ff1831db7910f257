import { and, eq, isNull, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { type Database, queryRows } from "../db/client.ts";
import { apiKeys, users } from "../db/schema/identity.ts";
import { ApiError } from "../errors.ts";
import { randomToken, secretsEqual, sha256Hex } from "./crypto.ts";
import { accessTokenCheck, TokenError, verifyAccessToken } from "./jwt.ts";
import { atMost, type Principal, type Role } from "./principal.ts";
import type { RevocationList } from "./revocation/port.ts";

type Db = Database;

const refuse = (detail: string, error = "invalid_token") =>
  new ApiError("UNAUTHORIZED", detail, {
    headers: { "WWW-Authenticate": `Bearer realm="voiceassist", error="${error}"` },
  });

const tokenDetails: Record<TokenError["problem"], string> = {
  malformed: "The access token is malformed.",
  unsupported_algorithm: "The access token's algorithm is not accepted (HS256 only).",
  unknown_key: "The access token was signed with an unknown key; sign in again.",
  bad_signature: "The access token's signature is invalid.",
  expired: "The access token has expired; refresh it.",
  invalid_claims: "The access token's claims are invalid.",
};

/**
 * Verifies an access token, then checks the database at once: the user must exist, be active and
 * still hold the token's role, and the session must be live; the token must not be revoked.
 */
export async function principalFromAccessToken(
  db: Db,
  config: Config,
  revocations: RevocationList,
  token: string,
): Promise<Principal> {
  let claims: Awaited<ReturnType<typeof verifyAccessToken>>;
  try {
    claims = await verifyAccessToken(token, accessTokenCheck(config));
  } catch (error) {
    if (error instanceof TokenError) throw refuse(tokenDetails[error.problem]);
    throw error;
  }
  const [row, revoked] = await Promise.all([
    queryRows<{ email: string; role: Role; is_active: boolean; deleted_at: string | null; session_live: boolean }>(
      db,
      sql`
      select u.email, u.role, u.is_active, u.deleted_at,
             exists (select 1 from auth_sessions s where s.id = ${claims.sid} and s.user_id = u.id
                     and s.revoked_at is null and s.expires_at > now()) as session_live
      from users u where u.id = ${claims.sub}`,
    ),
    revocations.isRevoked(claims.jti),
  ]);
  const user = row[0];
  if (!user || user.deleted_at) throw refuse("The account no longer exists.");
  if (!user.is_active) throw refuse("The account is deactivated.");
  if (revoked || !user.session_live) throw refuse("The session has ended; sign in again.");
  if (user.role !== claims.role) throw refuse("The account's role has changed; refresh the token or sign in again.");
  return {
    userId: claims.sub,
    email: user.email,
    role: user.role,
    sessionId: claims.sid,
    tokenId: claims.jti,
    tokenExpiresAt: claims.exp,
  };
}

export const API_KEY_PREFIX = "va_k_";
const LOOKUP_LENGTH = 12;

/** "va_k_" + 12 hex characters of public lookup prefix + "_" + the secret. */
const parseApiKey = (key: string) => {
  const match = /^va_k_([0-9a-f]{12})_([A-Za-z0-9_-]{32,})$/.exec(key);
  return match ? { prefix: match[1] as string } : undefined;
};

export const newApiKey = () => {
  const prefix = Array.from(crypto.getRandomValues(new Uint8Array(LOOKUP_LENGTH / 2)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
  const secret = randomToken(32); // 256 bits, 43 base64url characters
  return { prefix, key: `${API_KEY_PREFIX}${prefix}_${secret}` };
};

/** An API key acts with at most its owner's current role; a revoked or expired key is refused. */
export async function principalFromApiKey(db: Db, key: string): Promise<{ principal: Principal; stale: boolean }> {
  const parsed = parseApiKey(key);
  if (!parsed) throw refuse("The API key is malformed.", "invalid_key");
  const [row] = await db
    .select({
      id: apiKeys.id,
      keyHash: apiKeys.keyHash,
      role: apiKeys.role,
      expiresAt: apiKeys.expiresAt,
      lastUsedAt: apiKeys.lastUsedAt,
      userId: users.id,
      email: users.email,
      ownerRole: users.role,
      isActive: users.isActive,
    })
    .from(apiKeys)
    .innerJoin(users, eq(users.id, apiKeys.userId))
    .where(and(eq(apiKeys.prefix, parsed.prefix), isNull(apiKeys.revokedAt), isNull(users.deletedAt)))
    .limit(1);
  // Compare even when nothing was found, so timing does not tell which prefixes exist.
  const matches = await secretsEqual(await sha256Hex(key), row?.keyHash ?? "0".repeat(64));
  if (!row || !matches) throw refuse("The API key is not valid.", "invalid_key");
  if (row.expiresAt && row.expiresAt.getTime() <= Date.now()) throw refuse("The API key has expired.", "invalid_key");
  if (!row.isActive) throw refuse("The key's owner is deactivated.", "invalid_key");
  const stale = !row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000;
  return {
    principal: { userId: row.userId, email: row.email, role: atMost(row.role, row.ownerRole), apiKeyId: row.id },
    stale,
  };
}

/** Records last use at most once a minute per key, off the request path. */
export async function touchApiKey(db: Db, apiKeyId: string): Promise<void> {
  await db.update(apiKeys).set({ lastUsedAt: new Date() }).where(eq(apiKeys.id, apiKeyId));
}
