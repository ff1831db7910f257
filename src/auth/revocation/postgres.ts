import { and, eq, gt, lte } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { revokedTokens } from "../../db/schema/identity.ts";
import type { RevocationList } from "./port.ts";

/** Postgres, when no Redis is configured: rows past expiry are ignored, and purged by purgeExpired. */
export function postgresRevocationList(db: Database): RevocationList {
  return {
    async revoke(tokenId, expiresAt) {
      if (expiresAt <= Math.floor(Date.now() / 1000)) return;
      await db
        .insert(revokedTokens)
        .values({ jti: tokenId, expiresAt: new Date(expiresAt * 1000) })
        .onConflictDoNothing();
    },
    async isRevoked(tokenId) {
      const rows = await db
        .select({ jti: revokedTokens.jti })
        .from(revokedTokens)
        .where(and(eq(revokedTokens.jti, tokenId), gt(revokedTokens.expiresAt, new Date())))
        .limit(1);
      return rows.length > 0;
    },
  };
}

/** Daily clean-up: expired entries can no longer matter. */
export async function purgeExpiredRevocations(db: Database): Promise<number> {
  const deleted = await db.delete(revokedTokens).where(lte(revokedTokens.expiresAt, new Date())).returning();
  return deleted.length;
}
