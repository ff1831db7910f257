import { eq, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { kbState } from "../db/schema/kb.ts";

// Every cache of knowledge-base results keys on this version. It lives in Postgres, beside the data,
// and is bumped in the same transaction as the change, so no cache can outlive a delete or reindex.

export async function kbVersion(db: Database): Promise<number> {
  const [row] = await db.select({ version: kbState.version }).from(kbState).where(eq(kbState.id, 1));
  return row?.version ?? 0;
}

export async function bumpKbVersion(db: Database): Promise<void> {
  await db
    .update(kbState)
    .set({ version: sql`${kbState.version} + 1`, updatedAt: new Date() })
    .where(eq(kbState.id, 1));
}
