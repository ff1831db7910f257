import journal from "../../migrations/meta/_journal.json";
import { postgresErrorCode, type Sql } from "./client.ts";

/** Migrations bundled with this build, in order (drizzle-kit's journal). */
const bundledMigrations = journal.entries.map((e) => ({ tag: e.tag, createdAt: e.when }));

interface MigrationStatus {
  current: boolean;
  applied: number;
  pending: string[];
}

const UNDEFINED_TABLE = "42P01";
const UNDEFINED_SCHEMA = "3F000";

/** Compares drizzle's record of applied migrations with the ones this build expects. */
export async function migrationStatus(sql: Sql): Promise<MigrationStatus> {
  let latest = 0;
  let applied = 0;
  try {
    const rows = await sql`select count(*)::int as applied, coalesce(max(created_at), 0)::bigint as latest
                           from drizzle.__drizzle_migrations`;
    applied = Number(rows[0]?.applied ?? 0);
    latest = Number(rows[0]?.latest ?? 0);
  } catch (error) {
    const code = postgresErrorCode(error);
    if (code !== UNDEFINED_TABLE && code !== UNDEFINED_SCHEMA) throw error;
  }
  const pending = bundledMigrations.filter((m) => m.createdAt > latest).map((m) => m.tag);
  return { current: pending.length === 0, applied, pending };
}
