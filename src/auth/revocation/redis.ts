import type { Redis } from "@upstash/redis/cloudflare";
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
      return (await redis.exists(key(tokenId))) === 1;
    },
  };
}
