import type { Redis } from "@upstash/redis/cloudflare";
import { ApiError } from "../../errors.ts";
import type { RevocationList } from "./port.ts";

const key = (tokenId: string) => `revoked:jti:${tokenId}`;

/** Upstash Redis: SET with EXAT, so Redis itself forgets the entry when the token expires. */
export function redisRevocationList(redis: Redis): RevocationList {
  return {
    async revoke(tokenId, expiresAt) {
      if (expiresAt <= Math.floor(Date.now() / 1000)) return;
      await redis.set(key(tokenId), 1, { exat: expiresAt });
    },
    async isRevoked(tokenId) {
      try {
        return (await redis.exists(key(tokenId))) === 1;
      } catch (error) {
        // Fail closed: a token whose revocation cannot be checked is not honoured. But the store being gone is a
        // 502 that says so, not a 500 (found by the chaos experiment redis-unavailable).
        throw new ApiError("UPSTREAM_UNAVAILABLE", "The revocation store could not be reached; try again shortly.", {
          headers: { "Retry-After": "5" },
          cause: error,
        });
      }
    },
  };
}
