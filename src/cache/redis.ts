import { Redis } from "@upstash/redis/cloudflare";
import type { Config } from "../config.ts";
import { backoffMs, traceHeaders } from "../observability/outbound.ts";

const REDIS_TIMEOUT_MS = 2_000;

/** The L2 cache (Upstash REST) for the current unit of work, or undefined when not configured. */
export function createRedis(config: Config): Redis | undefined {
  if (!config.UPSTASH_REDIS_REST_URL || !config.UPSTASH_REDIS_REST_TOKEN) return undefined;
  const redis = new Redis({
    url: config.UPSTASH_REDIS_REST_URL,
    token: config.UPSTASH_REDIS_REST_TOKEN,
    enableTelemetry: false,
    retry: { retries: 2, backoff: backoffMs },
    // A fresh timeout per request: the cache must never hold a request up for long.
    signal: () => AbortSignal.timeout(REDIS_TIMEOUT_MS),
  });
  // The SDK has no header option on Workers; its HTTP client keeps a public headers map.
  Object.assign((redis as unknown as { client: { headers: Record<string, string> } }).client.headers, traceHeaders());
  return redis;
}
