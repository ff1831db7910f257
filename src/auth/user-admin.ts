import { and, count, desc, eq, ilike, isNotNull, isNull, or, type SQL, sql } from "drizzle-orm";
import { type AuditEvent, recordAudit } from "../audit/record.ts";
import type { Config } from "../config.ts";
import { type Database, withPoolDb } from "../db/client.ts";
import { pageOffset } from "../db/paging.ts";
import { users } from "../db/schema/identity.ts";
import { ApiError } from "../errors.ts";
import { type EndedSession, revokeAllSessions } from "./sessions.ts";
import type { UserRow } from "./users-store.ts";

export interface UserFilter {
  q?: string;
  role?: UserRow["role"];
  status?: "active" | "inactive" | "deleted";
  page: number;
  pageSize: number;
}

const notFound = () => new ApiError("NOT_FOUND", "No user with this id.");
// Keeps at least one active admin, so the platform can always be administered.
const anotherActiveAdmin = (id: string) =>
  sql`exists (select 1 from users o where o.role = 'admin' and o.is_active and o.deleted_at is null and o.id <> ${id})`;
const lastAdmin = () => new ApiError("CONFLICT", "This is the last active admin; make another admin first.");

/** An admin change and its audit row commit together, or not at all. */
export const auditedChange = <T>(config: Config, change: (tx: Database) => Promise<{ result: T; audit: AuditEvent }>) =>
  withPoolDb(config, (db) =>
    db.transaction(async (tx) => {
      const { result, audit } = await change(tx);
      await recordAudit(config, audit, { db: tx });
      return result;
    }),
  );

/** One page of users matching the filter, newest first, and how many match in all. */
export async function listUsers(db: Database, filter: UserFilter): Promise<{ rows: UserRow[]; total: number }> {
  const { q, role, status, page, pageSize } = filter;
  const filters: SQL[] = [];
  if (q) {
    const pattern = `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
    filters.push(or(ilike(users.email, pattern), ilike(users.fullName, pattern)) as SQL);
  }
  if (role) filters.push(eq(users.role, role));
  if (status === "deleted") filters.push(isNotNull(users.deletedAt));
  else if (status) filters.push(isNull(users.deletedAt), eq(users.isActive, status === "active"));
  const where = filters.length ? and(...filters) : undefined;
  const [rows, totals] = await Promise.all([
    db
      .select()
      .from(users)
      .where(where)
      .orderBy(desc(users.createdAt), desc(users.id))
      .limit(pageSize)
      .offset(pageOffset(page, pageSize)),
    db.select({ total: count() }).from(users).where(where),
  ]);
  return { rows, total: totals[0]?.total ?? 0 };
}

/** The user, or a 404: deleted users included, since admins manage them too. */
export async function loadUser(tx: Database, id: string): Promise<UserRow> {
  const [user] = await tx.select().from(users).where(eq(users.id, id)).limit(1);
  if (!user) throw notFound();
  return user;
}

export async function changeRole(tx: Database, id: string, role: UserRow["role"]) {
  const before = await loadUser(tx, id);
  if (before.deletedAt) throw new ApiError("CONFLICT", "The user is deleted.");
  const guard = before.role === "admin" && role !== "admin" ? anotherActiveAdmin(id) : sql`true`;
  const [after] = await tx
    .update(users)
    .set({ role, updatedAt: new Date() })
    .where(and(eq(users.id, id), guard))
    .returning();
  if (!after) throw lastAdmin();
  return { before, after };
}

/** Deactivation also ends every session, in the same transaction. */
export async function setActive(tx: Database, id: string, active: boolean) {
  const before = await loadUser(tx, id);
  if (before.deletedAt) throw new ApiError("CONFLICT", "The user is deleted; it cannot be activated or deactivated.");
  const guard = before.role === "admin" && !active ? anotherActiveAdmin(id) : sql`true`;
  const [after] = await tx
    .update(users)
    .set({ isActive: active, updatedAt: new Date() })
    .where(and(eq(users.id, id), guard))
    .returning();
  if (!after) throw lastAdmin();
  const ended = active ? [] : await revokeAllSessions(tx, id, "deactivated");
  return { before, after, ended };
}

/** Marks the user deleted and inactive and ends every session; the row stays until it is erased. */
export async function softDeleteUser(tx: Database, id: string): Promise<{ after: UserRow; ended: EndedSession[] }> {
  const before = await loadUser(tx, id);
  const guard = before.role === "admin" ? anotherActiveAdmin(id) : sql`true`;
  const [after] = await tx
    .update(users)
    .set({ deletedAt: new Date(), isActive: false, updatedAt: new Date() })
    .where(and(eq(users.id, id), isNull(users.deletedAt), guard))
    .returning();
  if (!after) throw before.deletedAt ? new ApiError("CONFLICT", "The user is already deleted.") : lastAdmin();
  return { after, ended: await revokeAllSessions(tx, id, "deleted") };
}

/** Erases a soft-deleted user; a live one must be soft-deleted first. */
export async function eraseUser(tx: Database, id: string): Promise<void> {
  const before = await loadUser(tx, id);
  if (!before.deletedAt) throw new ApiError("CONFLICT", "Soft-delete the user first (DELETE without permanent).");
  await tx.delete(users).where(and(eq(users.id, id), isNotNull(users.deletedAt)));
}
