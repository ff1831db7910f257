import { neon, neonConfig, Pool } from "@neondatabase/serverless";
import type { SQL } from "drizzle-orm";
import { drizzle as drizzleHttp } from "drizzle-orm/neon-http";
import { drizzle as drizzlePool } from "drizzle-orm/neon-serverless";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type { Config } from "../config.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { tracedFetch } from "../observability/outbound.ts";
import { sleep } from "../sleep.ts";
import * as schema from "./schema/index.ts";

const QUERY_TIMEOUT_MS = 15_000;
// pool.end() waits for each connection to close, which one that went silent mid-query never does: with nothing
// left pending, workerd cancels the request as hung (a 500; chaos database-failure and queue-redelivery saw it).
// The sockets go with the request anyway.
const POOL_END_WAIT_MS = 1_000;
let configuredProxy: string | undefined | null = null;

/**
 * Production talks to Neon directly. Locally NEON_LOCAL_PROXY names the proxy from
 * scripts/local-stack, which serves the WebSocket tunnel at /v1 and the HTTP SQL endpoint at /sql.
 */
function configureNeon(config: Pick<Config, "NEON_LOCAL_PROXY">): void {
  const proxy = config.NEON_LOCAL_PROXY;
  if (configuredProxy === proxy) return;
  configuredProxy = proxy;
  // Trace headers, a timeout and a clear error on every HTTP query.
  neonConfig.fetchFunction = (url: string, init: RequestInit) =>
    tracedFetch(url, { ...init, service: "Postgres", timeoutMs: QUERY_TIMEOUT_MS });
  if (proxy) {
    neonConfig.wsProxy = (host, port) => `${proxy}/v1?address=${host}:${port}`;
    neonConfig.fetchEndpoint = () => `http://${proxy}/sql`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
  }
}

/** One-shot queries over HTTP: no connection to open, the fastest path on Workers. */
export function createSql(config: Config) {
  configureNeon(config);
  return neon(config.DATABASE_URL);
}

export type Sql = ReturnType<typeof createSql>;

/** Any drizzle handle on our schema: the HTTP one, a Pool one, or a transaction of either. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

/** Rows of a raw SQL statement; both Neon drivers answer with a pg-style { rows }. */
export async function queryRows<T>(db: Database, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

/** Postgres's SQLSTATE for an error, whether raw from the driver or wrapped by drizzle (as its cause). */
export function postgresErrorCode(error: unknown): string | undefined {
  for (let e = error; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

type HttpDatabase = ReturnType<typeof drizzleHttp<typeof schema>>;
// One per config (so per isolate in production): building drizzle walks the whole schema, 0.2-0.5 ms a
// request, and the HTTP client holds no connection, so nothing ties it to one request.
const httpDatabases = new WeakMap<Config, HttpDatabase>();

/** drizzle over HTTP, for everything that needs no interactive transaction. */
export function createDb(config: Config): HttpDatabase {
  let db = httpDatabases.get(config);
  if (!db) {
    db = drizzleHttp({ client: createSql(config), schema });
    httpDatabases.set(config, db);
  }
  configureNeon(config);
  return db;
}

/**
 * drizzle over a WebSocket Pool, for interactive transactions. Workers cannot keep sockets
 * across requests, so the pool lives for one unit of work and is ended afterwards.
 */
export async function withPoolDb<T>(
  config: Config,
  work: (db: ReturnType<typeof drizzlePool<typeof schema>>) => Promise<T>,
): Promise<T> {
  configureNeon(config);
  const pool = new Pool({
    connectionString: config.DATABASE_URL,
    max: 2,
    connectionTimeoutMillis: 5_000,
    query_timeout: QUERY_TIMEOUT_MS,
  });
  // A late disconnect after end() must not surface as an unhandled error.
  pool.on("error", (error: Error) => log("debug", "postgres pool error", { error: describeError(error) }));
  try {
    return await work(drizzlePool({ client: pool, schema }));
  } finally {
    await Promise.race([pool.end().catch(() => undefined), sleep(POOL_END_WAIT_MS)]);
  }
}
