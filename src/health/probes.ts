// The probes behind /ready and /health/detailed: each component asked once, with a deadline.
import { createRedis } from "../cache/redis.ts";
import type { Config } from "../config.ts";
import { createSql } from "../db/client.ts";
import { migrationStatus } from "../db/migrations.ts";
import type { Env } from "../env.ts";
import { inBackground, type MetricEvent, recordMetrics } from "../metrics/record.ts";
import { tracedFetch } from "../observability/outbound.ts";
import { type ComponentCheck, probe } from "./status.ts";

const PROBE_TIMEOUT_MS = 3_000;

/** Readiness: the database answers and its migrations are current (migrations are asked only when it does). */
export async function checkReadiness(
  config: Config,
): Promise<{ database: ComponentCheck; migrations: ComponentCheck }> {
  const sql = createSql(config);
  const database = await probe(async () => {
    await sql`select 1`;
    return undefined;
  }, PROBE_TIMEOUT_MS);
  const migrations =
    database.status === "ok"
      ? await probe(async () => {
          const s = await migrationStatus(sql);
          return s.current
            ? { status: "ok", applied: s.applied }
            : {
                status: "down",
                applied: s.applied,
                pending: s.pending,
                reason: "migrations pending: run npm run db:migrate",
              };
        }, PROBE_TIMEOUT_MS)
      : { status: "down" as const, latency_ms: null, reason: "database unreachable" };
  return { database, migrations };
}

export /** Probes every component at once; optional ones that are not configured report "disabled". */
async function checkComponents(config: Config, env: Env): Promise<Record<string, ComponentCheck>> {
  const sql = createSql(config);
  const redis = createRedis(config);
  const [postgres, cache, vectors, ai] = await Promise.all([
    probe(async () => {
      await sql`select 1`;
      const migrations = await migrationStatus(sql);
      return { status: "ok", migrations_current: migrations.current };
    }, PROBE_TIMEOUT_MS),
    probe(async () => {
      if (!redis) return { status: "disabled", reason: "UPSTASH_REDIS_REST_URL not set: L2 cache off" };
      await redis.ping();
      return undefined;
    }, PROBE_TIMEOUT_MS),
    probe(async () => {
      if (config.QDRANT_URL) {
        const res = await tracedFetch(new URL("/readyz", config.QDRANT_URL), {
          service: "Qdrant",
          timeoutMs: PROBE_TIMEOUT_MS,
          headers: config.QDRANT_API_KEY ? { "api-key": config.QDRANT_API_KEY } : {},
        });
        await res.body?.cancel();
        return res.ok
          ? { status: "ok", backend: "qdrant" }
          : { status: "down", backend: "qdrant", reason: `HTTP ${res.status}` };
      }
      const rows = await sql`select extversion from pg_extension where extname = 'vector'`;
      return rows[0]
        ? { status: "ok", backend: "pgvector", version: rows[0].extversion }
        : { status: "down", backend: "pgvector", reason: "the vector extension is not installed in this database" };
    }, PROBE_TIMEOUT_MS),
    probe(async () => {
      if (!config.OPENAI_API_KEY) {
        return { status: "disabled", provider: "local", reason: "OPENAI_API_KEY not set: local providers in use" };
      }
      const base = config.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
      const res = await tracedFetch(`${base.replace(/\/$/, "")}/models`, {
        service: "OpenAI",
        timeoutMs: PROBE_TIMEOUT_MS,
        headers: { authorization: `Bearer ${config.OPENAI_API_KEY}` },
      });
      await res.body?.cancel();
      return res.ok
        ? { status: "ok", provider: "openai" }
        : { status: "down", provider: "openai", reason: `HTTP ${res.status}` };
    }, PROBE_TIMEOUT_MS),
  ]);
  // A queue cannot be pinged without sending a message; the binding is what can be checked.
  const queue: ComponentCheck = env.KB_INGEST
    ? { status: "ok", latency_ms: null, binding: "KB_INGEST", reason: "producer bound; delivery is not probed" }
    : { status: "down", latency_ms: null, reason: "KB_INGEST binding missing" };
  const components = { postgres, redis: cache, vector_store: vectors, ai_provider: ai, queue };
  // In the background: /health/detailed answers without waiting for the metrics aggregator.
  await recordMetrics(env, inBackground, ...healthCheckEvents(components));
  return components;
}

const statusValue = { ok: 1, down: 0, disabled: -1 } as const;

/**
 * health_check_status (1 ok, 0 down, -1 disabled) for every component, and health_check_duration_seconds
 * for every probe that ran (latency_ms not null: a disabled component or the unprobed queue has none).
 */
export function healthCheckEvents(components: Record<string, ComponentCheck>): MetricEvent[] {
  return Object.entries(components).flatMap(([component, check]): MetricEvent[] => [
    { name: "health_check_status", labels: { component }, value: statusValue[check.status] },
    ...(check.latency_ms === null
      ? []
      : [{ name: "health_check_duration_seconds" as const, labels: { component }, value: check.latency_ms / 1000 }]),
  ]);
}
