// npm run db:migrate: applies pending migrations to DATABASE_URL. A local Postgres (PGlite or a
// server on this machine) is reached through an ephemeral Neon proxy; Neon itself directly.

import { runMigrations } from "./db/migrate.ts";
import { startNeonProxy } from "./local-stack/neon-proxy.ts";

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

async function main(): Promise<number> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    console.error("DATABASE_URL is required: a postgres:// connection string (npm run dev migrates PGlite itself).");
    return 2;
  }
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    console.error("DATABASE_URL is not a valid URL.");
    return 2;
  }
  const local = LOCAL_HOSTS.has(url.hostname);
  const proxy = local ? await startNeonProxy({ postgresAddress: `${url.hostname}:${url.port || 5432}` }) : undefined;
  try {
    await runMigrations(databaseUrl, proxy?.hostPort);
    console.log(`Migrations are current on ${url.hostname}${url.pathname}.`);
    return 0;
  } catch (error) {
    console.error(`Migration failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await proxy?.stop();
  }
}

process.exitCode = await main();
