import { neonConfig, Pool } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { migrate } from "drizzle-orm/neon-serverless/migrator";
import ws from "ws";
import { createLocalNeonPool } from "../local-stack/neon-pool.ts";

export const MIGRATIONS_FOLDER = new URL("../../migrations", import.meta.url).pathname;
// Any fixed number: only migration runners take this advisory lock.
const MIGRATION_LOCK = 7_424_001;

/**
 * Applies pending migrations (drizzle records each in drizzle.__drizzle_migrations, so a rerun
 * is a no-op). One connection holds an advisory lock, so two runners never interleave.
 * `localProxy` is the host:port of the local Neon proxy; production Neon needs none.
 */
export async function runMigrations(databaseUrl: string, localProxy?: string): Promise<void> {
  const options = { connectionString: databaseUrl, max: 1, connectionTimeoutMillis: 10_000 };
  neonConfig.webSocketConstructor = ws;
  const pool = localProxy ? createLocalNeonPool(options, localProxy) : new Pool(options);
  pool.on("error", () => {});
  try {
    await pool.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      await migrate(drizzle({ client: pool }), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await pool.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK]);
    }
  } finally {
    await pool.end();
  }
}
