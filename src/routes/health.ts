import { createRoute, z } from "@hono/zod-openapi";
import { createRedis } from "../adapters/cache/redis.ts";
import { createSql } from "../adapters/db/client.ts";
import { migrationStatus } from "../adapters/db/migrations.ts";
import type { Config } from "../config.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { type ComponentCheck, overallStatus, probe } from "../health/status.ts";
import { requireOperator } from "../middleware/operator.ts";
import { tracedFetch } from "../observability/outbound.ts";
import { createRouter, problem, signedIn } from "./router.ts";

const PROBE_TIMEOUT_MS = 3_000;

const Liveness = z.object({
  status: z.literal("ok"),
  version: z.string(),
  commit: z.string(),
  timestamp: z.iso.datetime(),
});

const Component = z
  .object({
    status: z.enum(["ok", "down", "disabled"]),
    latency_ms: z.number().nullable(),
    reason: z.string().optional(),
  })
  .catchall(z.unknown());

const Readiness = z.object({ status: z.literal("ready"), checks: z.record(z.string(), Component) });

const Detailed = z.object({
  status: z.enum(["healthy", "degraded", "unhealthy"]),
  version: z.string(),
  commit: z.string(),
  timestamp: z.iso.datetime(),
  components: z.record(z.string(), Component),
});

export const healthRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["health"],
      summary: "Liveness: the Worker answers (also HEAD)",
      responses: { 200: { description: "Alive", content: { "application/json": { schema: Liveness } } } },
    }),
    (c) =>
      c.json(
        {
          status: "ok" as const,
          version: c.var.config.APP_VERSION,
          commit: c.var.config.GIT_COMMIT,
          timestamp: new Date().toISOString(),
        },
        200,
      ),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/ready",
      tags: ["health"],
      summary: "Readiness: the database answers and its migrations are current",
      responses: {
        200: { description: "Ready", content: { "application/json": { schema: Readiness } } },
        503: problem("Not ready, with per-check detail"),
      },
    }),
    async (c) => {
      const sql = createSql(c.var.config);
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
      const checks = { database, migrations };
      if (database.status !== "ok" || migrations.status !== "ok") {
        throw new ApiError("NOT_READY", "A readiness check failed; see checks.", {
          extensions: { checks },
          headers: { "Retry-After": "5" },
        });
      }
      return c.json({ status: "ready" as const, checks }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/health/detailed",
      tags: ["health"],
      summary: "Every component's status and latency (operator token)",
      security: [{ operatorToken: [] }, ...signedIn],
      middleware: [requireOperator] as const,
      responses: {
        200: { description: "Component report", content: { "application/json": { schema: Detailed } } },
        401: problem("Missing or wrong operator token"),
      },
    }),
    async (c) => {
      const components = await checkComponents(c.var.config, c.env);
      return c.json(
        {
          status: overallStatus(components),
          version: c.var.config.APP_VERSION,
          commit: c.var.config.GIT_COMMIT,
          timestamp: new Date().toISOString(),
          components,
        },
        200,
      );
    },
  );

/** Probes every component at once; optional ones that are not configured report "disabled". */
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
  return { postgres, redis: cache, vector_store: vectors, ai_provider: ai, queue };
}
