import { createRedis } from "../../cache/redis.ts";
import type { Config } from "../../config.ts";
import { createDb } from "../../db/client.ts";
import type { RevocationList } from "./port.ts";
import { postgresRevocationList } from "./postgres.ts";
import { redisRevocationList } from "./redis.ts";

export type { RevocationList };

/** Redis when configured (TTL built in), else Postgres. */
export function createRevocationList(config: Config): RevocationList {
  const redis = createRedis(config);
  return redis ? redisRevocationList(redis) : postgresRevocationList(createDb(config));
}
