import { and, eq, isNull, sql } from "drizzle-orm";
import { recordAudit } from "../audit/record.ts";
import type { Config } from "../config.ts";
import { type Database, withPoolDb } from "../db/client.ts";
import { users } from "../db/schema/identity.ts";
import { ApiError } from "../errors.ts";

export type UserRow = typeof users.$inferSelect;

interface NewAccount {
  email: string;
  fullName: string;
  passwordHash: string;
}

// Any fixed number: serialises bootstrap attempts so two cannot both create "the first" admin.
const BOOTSTRAP_LOCK = 7_424_002;

/** A new end user, or undefined when the email is taken (no error, so a duplicate looks like any other refusal). */
export async function createUser(db: Database, account: NewAccount): Promise<UserRow | undefined> {
  const [created] = await db.insert(users).values(account).onConflictDoNothing({ target: users.email }).returning();
  return created;
}

export async function findUserByEmail(db: Database, email: string): Promise<UserRow | undefined> {
  const [user] = await db.select().from(users).where(eq(users.email, email)).limit(1);
  return user;
}

export async function findUser(db: Database, id: string): Promise<UserRow | undefined> {
  const [user] = await db.select().from(users).where(eq(users.id, id));
  return user;
}

/** Stamps the login, and stores an upgraded hash when the old one used weaker parameters. */
export async function recordLogin(db: Database, id: string, upgradedHash?: string): Promise<void> {
  const rehashed = upgradedHash ? { passwordHash: upgradedHash } : {};
  await db
    .update(users)
    .set({ lastLoginAt: new Date(), ...rehashed })
    .where(eq(users.id, id));
}

export async function setPassword(db: Database, id: string, passwordHash: string): Promise<void> {
  await db.update(users).set({ passwordHash, updatedAt: new Date() }).where(eq(users.id, id));
}

/** The first admin and its audit row, in one transaction held under an advisory lock. */
export async function createFirstAdmin(config: Config, account: NewAccount): Promise<UserRow> {
  return withPoolDb(config, (db) =>
    db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
      const [existing] = await tx
        .select({ id: users.id })
        .from(users)
        .where(and(eq(users.role, "admin"), isNull(users.deletedAt)))
        .limit(1);
      if (existing)
        throw new ApiError("CONFLICT", "An admin already exists: bootstrap is closed. Sign in as that admin.");
      const [created] = await tx
        .insert(users)
        .values({ ...account, role: "admin" })
        .onConflictDoNothing({ target: users.email })
        .returning();
      if (!created)
        throw new ApiError("CONFLICT", "This email already belongs to an account; use another for the admin.");
      await recordAudit(
        config,
        { action: "admin.bootstrap", actor: { type: "system" }, target: { type: "user", id: created.id } },
        { db: tx },
      );
      return created;
    }),
  );
}
