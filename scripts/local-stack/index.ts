import { randomBytes } from "node:crypto";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.ts";
import { startFaultControl } from "./fault-proxy-control.ts";
import { createLocalNeonPool } from "./neon-pool.ts";
import { startNeonProxy } from "./neon-proxy.ts";
import { startEmbeddedPostgres } from "./postgres.ts";
import { redactUrl } from "./redact-url.ts";
import { startUpstashServer } from "./upstash-server.ts";

export interface LocalStackOptions {
  /** Folder for PGlite's data; undefined keeps it in memory. Ignored when databaseUrl is set. */
  dataDir?: string;
  /** Use this Postgres instead of starting PGlite. */
  databaseUrl?: string;
  /** Redis behind the Upstash-compatible server; default redis://127.0.0.1:6379. */
  redisUrl?: string;
  /**
   * For chaos experiments (docs/chaos.md): put a fault proxy in front of the Neon proxy and the Upstash server
   * and serve their control on 127.0.0.1:<this port>. Unset (the default): no proxy, nothing changes.
   */
  faultControlPort?: number;
}

export interface LocalStack {
  /** Worker variables: DATABASE_URL, NEON_LOCAL_PROXY, and UPSTASH_REDIS_REST_URL/TOKEN when Redis is reachable. */
  env: Record<string, string>;
  databaseHasVector: boolean;
  redis: boolean;
  /** What runs where, one line each. */
  summary: string[];
  /** Degraded parts, e.g. the L2 cache off because Redis is not reachable. */
  notices: string[];
  /** Stops everything; safe to call more than once. */
  stop(): Promise<void>;
}

const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/** Starts Postgres (PGlite unless databaseUrl), the Neon proxy, and the Upstash server when Redis is reachable. */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const stops: (() => Promise<void>)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => {
    // Reverse order: the Upstash server, then the proxy (its pools dial Postgres), then Postgres.
    stopping ??= (async () => {
      for (const stopPart of stops.reverse()) await stopPart().catch(reportStopError);
    })();
    return stopping;
  };
  const summary: string[] = [];
  const notices: string[] = [];
  const env: Record<string, string> = {};

  try {
    let databaseUrl = options.databaseUrl;
    if (!databaseUrl) {
      const postgres = await startEmbeddedPostgres({ dataDir: options.dataDir });
      stops.push(postgres.stop);
      databaseUrl = postgres.url;
      summary.push(
        `Postgres     PGlite + pgvector at ${hostPortOf(databaseUrl)}, data ${options.dataDir ?? "in memory"}`,
      );
    }
    // PGlite is a single backend: serialise connections transaction by transaction (session-gate.ts).
    const proxy = await startNeonProxy({
      postgresAddress: hostPortOf(databaseUrl),
      serialiseSessions: !options.databaseUrl,
    });
    stops.push(proxy.stop);
    env.DATABASE_URL = databaseUrl;
    env.NEON_LOCAL_PROXY = proxy.hostPort;
    const faultProxies: Record<string, FaultProxy> = {};
    if (options.faultControlPort !== undefined) {
      faultProxies.postgres = await startFaultProxy({ upstream: proxy.hostPort });
      stops.push(faultProxies.postgres.stop);
    }

    let databaseHasVector = true;
    if (options.databaseUrl) {
      databaseHasVector = await vectorAvailable(databaseUrl, proxy.hostPort);
      summary.push(`Postgres     ${redactUrl(databaseUrl)}${databaseHasVector ? " (pgvector available)" : ""}`);
      if (!databaseHasVector) {
        notices.push(
          `pgvector is not available in ${redactUrl(databaseUrl)}: the pgvector store is down (QDRANT_URL selects Qdrant)`,
        );
      }
    }
    summary.push(`Neon proxy   ws://${proxy.hostPort}/v1 (WebSocket) and http://${proxy.hostPort}/sql (HTTP)`);

    const redisUrl = options.redisUrl ?? DEFAULT_REDIS_URL;
    let redis = false;
    try {
      const upstash = await startUpstashServer({ redisUrl, token: randomBytes(24).toString("base64url") });
      stops.push(upstash.stop);
      env.UPSTASH_REDIS_REST_URL = upstash.url;
      env.UPSTASH_REDIS_REST_TOKEN = upstash.token;
      redis = true;
      summary.push(`Upstash REST ${upstash.url} over ${redactUrl(redisUrl)}`);
      if (options.faultControlPort !== undefined) {
        faultProxies.redis = await startFaultProxy({ upstream: new URL(upstash.url).host });
        stops.push(faultProxies.redis.stop);
      }
    } catch (error) {
      notices.push(`${(error as Error).message}: L2 cache is off`);
    }
    if (options.faultControlPort !== undefined) {
      // The Worker dials the fault proxies; migrations and this process's own checks go through them too.
      if (faultProxies.postgres) env.NEON_LOCAL_PROXY = faultProxies.postgres.hostPort;
      if (faultProxies.redis) env.UPSTASH_REDIS_REST_URL = `http://${faultProxies.redis.hostPort}`;
      const control = await startFaultControl(faultProxies, options.faultControlPort);
      stops.push(control.stop);
      summary.push(
        `Faults       ${control.url}/faults (chaos: ${Object.keys(faultProxies).join(", ")} behind fault proxies)`,
      );
    }

    return { env, databaseHasVector, redis, summary, notices, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Whether the pgvector extension can be created; also proves the database is reachable. */
async function vectorAvailable(databaseUrl: string, proxyHostPort: string): Promise<boolean> {
  const pool = createLocalNeonPool({ connectionString: databaseUrl, max: 1, query_timeout: 10_000 }, proxyHostPort);
  try {
    const { rows } = await pool.query("select 1 from pg_available_extensions where name = 'vector'");
    return rows.length > 0;
  } catch (error) {
    throw new Error(`Postgres at ${redactUrl(databaseUrl)} is not reachable: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    await pool.end();
  }
}

function hostPortOf(databaseUrl: string): string {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error(`database URL is not a valid postgres:// URL: ${redactUrl(databaseUrl)}`);
  }
  return `${url.hostname}:${url.port || "5432"}`;
}

function reportStopError(error: unknown): void {
  console.error(`local stack: stopping failed: ${(error as Error).message}`);
}
