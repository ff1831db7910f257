import { and, asc, count, desc, eq, gt, gte, like, lt, lte, max, type SQL } from "drizzle-orm";
import { base64url, fromBase64url, utf8 } from "../auth/crypto.ts";
import type { Database } from "../db/client.ts";
import { auditLog } from "../db/schema/audit.ts";
import { type BrokenLink, type ChainRow, contentJson, GENESIS, verifyChain } from "./chain.ts";

type AuditRow = typeof auditLog.$inferSelect;

export interface AuditFilter {
  actorId?: string;
  actorType?: string;
  /** Exact ("auth.login") or a prefix ending in ".*" ("auth.*", "admin.user.*"). */
  action?: string;
  outcome?: string;
  targetType?: string;
  targetId?: string;
  /** Inclusive. */
  from?: Date;
  /** Exclusive. */
  to?: Date;
}

export const MAX_PAGE_SIZE = 200;
const DEFAULT_PAGE_SIZE = 50;
const EXPORT_PAGE_SIZE = 500;
const VERIFY_PAGE_SIZE = 1_000;

function actionCondition(action: string): SQL {
  if (!action.endsWith(".*")) return eq(auditLog.action, action);
  // LIKE wildcards inside the prefix are literal.
  const prefix = action.slice(0, -1).replace(/[\\%_]/g, "\\$&");
  return like(auditLog.action, `${prefix}%`);
}

function filterCondition(f: AuditFilter): SQL | undefined {
  return and(
    f.actorId !== undefined ? eq(auditLog.actorId, f.actorId) : undefined,
    f.actorType !== undefined ? eq(auditLog.actorType, f.actorType) : undefined,
    f.action !== undefined ? actionCondition(f.action) : undefined,
    f.outcome !== undefined ? eq(auditLog.outcome, f.outcome) : undefined,
    f.targetType !== undefined ? eq(auditLog.targetType, f.targetType) : undefined,
    f.targetId !== undefined ? eq(auditLog.targetId, f.targetId) : undefined,
    f.from !== undefined ? gte(auditLog.occurredAt, f.from) : undefined,
    f.to !== undefined ? lt(auditLog.occurredAt, f.to) : undefined,
  );
}

// The cursor is the last seq of the page, wrapped so clients treat it as opaque.
export const encodeCursor = (seq: number): string => base64url(utf8(`seq:${seq}`));

export function decodeCursor(cursor: string): number | undefined {
  const bytes = fromBase64url(cursor);
  const match = bytes && /^seq:(\d{1,15})$/.exec(new TextDecoder().decode(bytes));
  return match ? Number(match[1]) : undefined;
}

export interface AuditPage {
  items: AuditRow[];
  nextCursor: string | null;
  total: number;
}

/** Newest first, by keyset on seq (stable while rows are appended); total counts the whole filter. */
export async function listAudit(
  db: Database,
  filter: AuditFilter,
  page: { after?: number; limit?: number } = {},
): Promise<AuditPage> {
  const limit = Math.min(Math.max(page.limit ?? DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE);
  const where = filterCondition(filter);
  const [rows, totals] = await Promise.all([
    db
      .select()
      .from(auditLog)
      .where(and(where, page.after !== undefined ? lt(auditLog.seq, page.after) : undefined))
      .orderBy(desc(auditLog.seq))
      .limit(limit + 1),
    db.select({ total: count() }).from(auditLog).where(where),
  ]);
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null,
    total: totals[0]?.total ?? 0,
  };
}

/** The wire shape of one row (snake_case, ISO time), shared by the list and the CSV export. */
export const auditItem = (row: AuditRow) => ({ ...contentJson(row), prev_hash: row.prevHash, hash: row.hash });

export type AuditItem = ReturnType<typeof auditItem>;

const CSV_COLUMNS = [
  "seq",
  "id",
  "occurred_at",
  "actor_type",
  "actor_id",
  "action",
  "outcome",
  "target_type",
  "target_id",
  "request_id",
  "trace_id",
  "ip",
  "user_agent",
  "before",
  "after",
  "metadata",
  "prev_hash",
  "hash",
] as const satisfies readonly (keyof AuditItem)[];

// A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
const FORMULA_START = /^[=+\-@\t\r]/;

/** One RFC 4180 cell: JSON for objects, a leading quote against formulas, quoted when it must be. */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  let text = typeof value === "object" ? JSON.stringify(value) : String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvLine = (cells: readonly unknown[]): string => `${cells.map(csvCell).join(",")}\r\n`;

const csvRow = (row: AuditRow): string => {
  const item = auditItem(row);
  return csvLine(CSV_COLUMNS.map((column) => item[column]));
};

/**
 * Oldest first, one page per pull, so a large export never sits in memory; it stops at the last
 * row that existed when it started, so it is a consistent prefix of the chain.
 */
export function exportAuditCsv(db: Database, filter: AuditFilter, pageSize = EXPORT_PAGE_SIZE) {
  const encoder = new TextEncoder();
  const where = filterCondition(filter);
  let upTo: number | null | undefined;
  let after = 0;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(csvLine(CSV_COLUMNS)));
    },
    async pull(controller) {
      if (upTo === undefined) {
        const [head] = await db.select({ seq: max(auditLog.seq) }).from(auditLog);
        upTo = head?.seq ?? null;
      }
      if (upTo === null) return controller.close();
      const rows = await db
        .select()
        .from(auditLog)
        .where(and(where, gt(auditLog.seq, after), lte(auditLog.seq, upTo)))
        .orderBy(asc(auditLog.seq))
        .limit(pageSize);
      if (rows.length > 0) controller.enqueue(encoder.encode(rows.map(csvRow).join("")));
      after = rows.at(-1)?.seq ?? after;
      if (rows.length < pageSize) controller.close();
    },
  });
}

type ChainReport = { ok: true; rowsChecked: number } | { ok: false; rowsChecked: number; firstBroken: BrokenLink };

/** Walks the whole chain from the genesis in seq order, a page at a time, and stops at the first broken link. */
export async function verifyAuditChain(db: Database, pageSize = VERIFY_PAGE_SIZE): Promise<ChainReport> {
  let from = GENESIS;
  let rowsChecked = 0;
  for (;;) {
    const rows: ChainRow[] = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.seq, from.seq))
      .orderBy(asc(auditLog.seq))
      .limit(pageSize);
    const verdict = await verifyChain(rows, from);
    rowsChecked += verdict.checked;
    if (!verdict.ok) return { ok: false, rowsChecked, firstBroken: verdict.broken };
    if (rows.length < pageSize) return { ok: true, rowsChecked };
    from = verdict.last;
  }
}
