// The system of record for flags, and its one writer. Every admin change goes through `writeFlags`: it locks the
// rule-set version row, applies the change, validates what it touches against the whole rule set, bumps the
// version, records the change (before/after) and its audit row, and builds the new snapshot, all in one
// transaction. Two writers therefore serialise, and a snapshot always matches its version.
import { and, asc, count, eq, ilike, isNull, or, type SQL, sql } from "drizzle-orm";
import { recordAudit } from "../audit/record.ts";
import type { Config } from "../config.ts";
import { type Database, withPoolDb } from "../db/client.ts";
import { pageOffset } from "../db/paging.ts";
import { flagChanges, flagOverrides, flagSegments, flagState, flags } from "../db/schema/flags.ts";
import { ApiError, type FieldError } from "../errors.ts";
import { canonicalJson } from "../json.ts";
import { clientFeatures, rulesOf, unleashFromFlag } from "./interchange.ts";
import type { ClientFeatures, FlagDefinition, OverrideRule, Segment, Snapshot } from "./model.ts";

type FlagRow = typeof flags.$inferSelect;
type SegmentRow = typeof flagSegments.$inferSelect;
type OverrideRow = typeof flagOverrides.$inferSelect;

/** A flag as the admin API shows it. */
export interface FlagRecord extends FlagDefinition {
  key: string;
  archived: boolean;
  version: number;
  createdAt: string;
  updatedAt: string;
  updatedBy: string | null;
}

export const flagRecord = (row: FlagRow): FlagRecord => ({
  key: row.key,
  ...row.definition,
  archived: row.archived,
  version: row.version,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
  updatedBy: row.updatedBy,
});

export const segmentOf = (row: SegmentRow): Segment => ({
  id: row.id,
  name: row.name,
  description: row.description,
  constraints: row.constraints,
});

export const overrideOf = (row: OverrideRow): OverrideRule => ({
  ...(row.variant !== null ? { variant: row.variant } : { value: row.value }),
  expiresAt: row.expiresAt?.toISOString() ?? null,
});

/** One change to the rule set: what it touched, and the state before and after (null when absent). */
export interface Change {
  subject: "flag" | "flag_segment" | "flag_override" | "flag_ruleset";
  key: string;
  action: string;
  before: unknown;
  after: unknown;
}

export interface Committed<T> {
  result: T;
  /** The rule-set version after the write (unchanged when the write changed nothing). */
  version: number;
  /** The new snapshot, when something changed. */
  snapshot?: Snapshot;
  changes: Change[];
  /** When the transaction had committed (epoch ms, the writer's clock): where flag_propagation_seconds starts. */
  committedAt: number;
}

/** The transaction a write works in: a drizzle Pool transaction. */
export type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];

/**
 * Applies one admin write. `work` reads and writes through `tx` and returns the changes it made; an ApiError
 * it throws rolls everything back. Writes that change nothing leave the version alone.
 */
export async function writeFlags<T>(
  config: Config,
  actorId: string | null,
  work: (tx: Tx) => Promise<{ result: T; changes: Change[] }>,
): Promise<Committed<T>> {
  const written = await withPoolDb(config, (db) =>
    db.transaction(async (tx) => {
      const [state] = await tx.select().from(flagState).where(eq(flagState.id, 1)).for("update");
      const current = state?.version ?? 0;
      const { result, changes } = await work(tx);
      if (!changes.length) return { result, version: current, changes };
      const version = current + 1;
      await tx
        .insert(flagState)
        .values({ id: 1, version })
        .onConflictDoUpdate({ target: flagState.id, set: { version, updatedAt: sql`now()` } });
      await tx.insert(flagChanges).values(
        changes.map((c) => ({
          version,
          subject: c.subject,
          subjectKey: c.key,
          action: c.action,
          before: c.before ?? null,
          after: c.after ?? null,
          actorId,
        })),
      );
      const [first] = changes as [Change];
      await recordAudit(
        config,
        changes.length === 1
          ? {
              action: `admin.${first.subject}.${first.action}`,
              target: { type: first.subject, id: first.key },
              before: first.before,
              after: first.after,
              metadata: { version, diff: diffFields(first.before, first.after) },
            }
          : {
              action: `admin.flag_ruleset.${first.action}`,
              target: { type: "flag_ruleset", id: null },
              metadata: {
                version,
                changes: changes.map((c) => ({ subject: c.subject, key: c.key, action: c.action })),
              },
            },
        { db: tx },
      );
      return { result, version, changes, snapshot: await buildSnapshot(tx, version) };
    }),
  );
  return { ...written, committedAt: Date.now() };
}

/** The top-level fields that differ between two states, each with its before and after. */
export function diffFields(before: unknown, after: unknown): Record<string, { before: unknown; after: unknown }> {
  const a = (before ?? {}) as Record<string, unknown>;
  const b = (after ?? {}) as Record<string, unknown>;
  const diff: Record<string, { before: unknown; after: unknown }> = {};
  for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (field === "updatedAt" || field === "version") continue;
    if (canonicalJson(a[field]) !== canonicalJson(b[field])) diff[field] = { before: a[field], after: b[field] };
  }
  return diff;
}

/** The whole live rule set (archived flags left out) under a version. */
export async function buildSnapshot(db: Database, version?: number): Promise<Snapshot> {
  const [flagRows, segmentRows, overrideRows, state] = await Promise.all([
    db.select().from(flags).where(eq(flags.archived, false)).orderBy(asc(flags.key)),
    db.select().from(flagSegments).orderBy(asc(flagSegments.id)),
    db
      .select()
      .from(flagOverrides)
      .where(or(isNull(flagOverrides.expiresAt), sql`${flagOverrides.expiresAt} > now()`)),
    version === undefined ? db.select().from(flagState).where(eq(flagState.id, 1)) : Promise.resolve([{ version }]),
  ]);
  const overrides: Snapshot["overrides"] = {};
  for (const row of overrideRows) {
    const forFlag = overrides[row.flagKey] ?? {};
    forFlag[row.userId] = overrideOf(row);
    overrides[row.flagKey] = forFlag;
  }
  return {
    version: state[0]?.version ?? 0,
    builtAt: new Date().toISOString(),
    flags: flagRows.map((row) => rulesOf(row.key, row.definition, row.version)),
    segments: segmentRows.map(segmentOf),
    overrides,
  };
}

export async function findFlag(db: Database, key: string): Promise<FlagRow | undefined> {
  const [row] = await db.select().from(flags).where(eq(flags.key, key)).limit(1);
  return row;
}

export async function loadFlag(db: Database, key: string): Promise<FlagRow> {
  const row = await findFlag(db, key);
  if (!row) throw new ApiError("NOT_FOUND", `No flag with the key ${JSON.stringify(key)}.`);
  return row;
}

/** What the admin flag list filters on; `archived` "all" shows both. */
export interface FlagQuery {
  q?: string;
  tag?: string;
  archived: "false" | "true" | "all";
  page: number;
  pageSize: number;
}

/** One page of flags by key, and how many match in all; `q` searches key and description. */
export async function listFlags(db: Database, query: FlagQuery): Promise<{ items: FlagRecord[]; total: number }> {
  const { q, tag, archived, page, pageSize } = query;
  const filters: SQL[] = [];
  if (archived !== "all") filters.push(eq(flags.archived, archived === "true"));
  if (tag) filters.push(sql`${flags.definition} -> 'tags' ? ${tag}`);
  if (q) {
    const pattern = `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
    filters.push(or(ilike(flags.key, pattern), ilike(sql`${flags.definition} ->> 'description'`, pattern)) as SQL);
  }
  const where = filters.length ? and(...filters) : undefined;
  const [rows, totals] = await Promise.all([
    db.select().from(flags).where(where).orderBy(asc(flags.key)).limit(pageSize).offset(pageOffset(page, pageSize)),
    db.select({ total: count() }).from(flags).where(where),
  ]);
  return { items: rows.map(flagRecord), total: totals[0]?.total ?? 0 };
}

/** Every segment by id, with its version (the admin view). */
export async function listSegments(db: Database): Promise<(Segment & { version: number })[]> {
  const rows = await db.select().from(flagSegments).orderBy(asc(flagSegments.id));
  return rows.map((row) => ({ ...segmentOf(row), version: row.version }));
}

/** Every live flag and segment, as stored, as an Unleash client-API document under the current version. */
export async function exportFeatures(db: Database): Promise<ClientFeatures> {
  const [rows, segments, state] = await Promise.all([
    db.select().from(flags).where(eq(flags.archived, false)).orderBy(asc(flags.key)),
    db.select().from(flagSegments).orderBy(asc(flagSegments.id)),
    db.execute(sql`select version from flag_state where id = 1`),
  ]);
  const version = Number((state as unknown as { rows: { version: string }[] }).rows[0]?.version ?? 0);
  const features = rows.map((row) => unleashFromFlag(row.key, row.definition));
  return clientFeatures(version, features, segments.map(segmentOf));
}

/** The version a write must match: If-Match (an ETag or a bare number) or the body's version. */
export function expectedVersion(ifMatch: string | undefined, bodyVersion: number | undefined): number | undefined {
  if (ifMatch === undefined) return bodyVersion;
  const match = /^(?:W\/)?"?(\d+)"?$/.exec(ifMatch.trim());
  if (!match) throw new ApiError("BAD_REQUEST", 'If-Match must be the ETag of the flag, like "3".');
  return Number(match[1]);
}

/** Refuses a write made against an older version, so two admins never silently overwrite each other. */
export function assertVersion(row: { version: number }, expected: number | undefined, required: boolean): void {
  if (expected === undefined) {
    if (required) {
      throw new ApiError("PRECONDITION_REQUIRED", "Send If-Match with the flag's ETag (or its version in the body).");
    }
    return;
  }
  if (row.version !== expected) {
    throw new ApiError(
      "PRECONDITION_FAILED",
      `The flag changed since you read it: it is at version ${row.version}, you sent ${expected}. Re-read it and retry.`,
      { extensions: { currentVersion: row.version } },
    );
  }
}

/** Write-time refusal with every field at fault. */
export function invalid(errors: FieldError[]): ApiError {
  const summary = errors.map((e) => `${e.field} ${e.message}`).join("; ");
  return new ApiError("VALIDATION_FAILED", `The flag rules are invalid: ${summary}.`, { errors });
}

/** Segment ids and every flag's dependencies, for validation inside the write's transaction. */
export async function validationScope(tx: Database) {
  const [segmentRows, flagRows] = await Promise.all([
    tx.select({ id: flagSegments.id }).from(flagSegments),
    tx.select({ key: flags.key, definition: flags.definition }).from(flags),
  ]);
  const dependencies = new Map(flagRows.map((r) => [r.key, r.definition.dependencies.map((d) => d.feature)]));
  return {
    segmentIds: new Set(segmentRows.map((r) => r.id)),
    flagKeys: new Set(dependencies.keys()),
    dependencies,
  };
}

export const overrideKey = (flagKey: string, userId: string) =>
  and(eq(flagOverrides.flagKey, flagKey), eq(flagOverrides.userId, userId));
