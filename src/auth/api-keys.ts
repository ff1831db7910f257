import { and, desc, eq, isNull } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { apiKeys } from "../db/schema/identity.ts";

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export async function createApiKey(db: Database, key: typeof apiKeys.$inferInsert): Promise<ApiKeyRow> {
  const [created] = await db.insert(apiKeys).values(key).returning();
  if (!created) throw new Error("api key insert returned nothing");
  return created;
}

/** The owner's keys, revoked ones included, newest first. */
export async function listApiKeys(db: Database, userId: string): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).where(eq(apiKeys.userId, userId)).orderBy(desc(apiKeys.createdAt));
}

/** False when the key is not the owner's or is already revoked: both read as "no such key" to the caller. */
export async function revokeApiKey(db: Database, userId: string, id: string): Promise<boolean> {
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return revoked.length > 0;
}
