import type { Redis } from "@upstash/redis/cloudflare";
import { describeError } from "../../observability/errors.ts";
import { log } from "../../observability/log.ts";
import type { RevocationList } from "./port.ts";

const key = (tokenId: string) => `revoked:jti:${tokenId}`;
// Log when the store starts failing, not on every request while it is down.
let unreachable = false;

/** Upstash Redis: SET with EXAT, so Redis itself forgets the entry when the token expires. */
export function redisRevocationList(redis: Redis): RevocationList {
  return {
    async revoke(tokenId, expiresAt) {
      if (expiresAt <= Math.floor(Date.now() / 1000)) return;
      await redis.set(key(tokenId), 1, { exat: expiresAt });
    },
    async isRevoked(tokenId) {
      try {
        const found = (await redis.exists(key(tokenId))) === 1;
        unreachable = false;
        return found;
      } catch (error) {
        // Every token this list holds also belongs to an ended session, which the sign-in query checks in
        // Postgres: with Redis gone, that check still refuses it, so sign-in goes on (chaos: redis-unavailable).
        if (!unreachable)
          log("warn", "revocation store unreachable: the session check alone decides", { error: describeError(error) });
        unreachable = true;
        return false;
      }
    },
  };
}
