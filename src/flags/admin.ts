// Admin operations on the rule set. Each runs inside writeFlags (one transaction under the rule-set lock),
// validates what it changes against the whole rule set, and reports its changes for history, audit and the
// change stream. Routes stay thin: parse, call one of these, publish, answer.
import { and, asc, eq, inArray, isNotNull, lte, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { flagOverrides, flagSegments, flags } from "../db/schema/flags.ts";
import { ApiError, type FieldError } from "../errors.ts";
import { canonicalJson } from "../json.ts";
import { rulesOf } from "./interchange.ts";
import type { Constraint, FlagDefinition, JsonValue, OverrideRule } from "./model.ts";
import {
  assertVersion,
  type Change,
  type Committed,
  type FlagRecord,
  findFlag,
  flagRecord,
  invalid,
  loadFlag,
  overrideKey,
  overrideOf,
  segmentOf,
  type Tx,
  validationScope,
  writeFlags,
} from "./store.ts";
import { validateFlag, validateOverride, validateSegment } from "./validate.ts";

/** A precondition from If-Match or the body; `required` for writes that replace or remove a flag. */
export interface Precondition {
  expected?: number;
  required: boolean;
}

const prefixed = (prefix: string, errors: FieldError[]) =>
  errors.map((e) => ({ field: `${prefix}${e.field ? `.${e.field}` : ""}`, message: e.message }));

/** Refuses a definition that would break the rule set, naming each field at fault. */
async function check(tx: Tx, key: string, definition: FlagDefinition, prefix = "body"): Promise<void> {
  const scope = await validationScope(tx);
  scope.dependencies.set(
    key,
    definition.dependencies.map((d) => d.feature),
  );
  const errors = validateFlag(
    { ...rulesOf(key, definition, 1), key },
    { segmentIds: scope.segmentIds, dependenciesOf: (k: string) => scope.dependencies.get(k) },
  );
  if (errors.length) throw invalid(prefixed(prefix, errors));
}

export function createFlag(config: Config, actorId: string | null, key: string, definition: FlagDefinition) {
  return writeFlags(config, actorId, async (tx) => {
    if (await findFlag(tx, key)) throw new ApiError("CONFLICT", `A flag with the key ${JSON.stringify(key)} exists.`);
    await check(tx, key, definition);
    const [row] = await tx.insert(flags).values({ key, definition, updatedBy: actorId }).returning();
    const after = flagRecord(row as typeof flags.$inferSelect);
    return { result: after, changes: [{ subject: "flag", key, action: "created", before: null, after }] };
  });
}

/**
 * Changes one flag: `change` gets the stored definition and returns the new one (and the archive state).
 * Bumps the flag's own version; a change that alters nothing is a no-op that keeps every version.
 */
export function updateFlag(
  config: Config,
  actorId: string | null,
  key: string,
  precondition: Precondition,
  change: (current: FlagRecord) => { definition: FlagDefinition; archived?: boolean },
  action = "updated",
): Promise<Committed<FlagRecord>> {
  return writeFlags(config, actorId, async (tx) => {
    const before = flagRecord(await loadFlag(tx, key));
    assertVersion(before, precondition.expected, precondition.required);
    const { definition, archived = before.archived } = change(before);
    if (archived === before.archived && canonicalJson(definition) === canonicalJson(definitionOf(before))) {
      return { result: before, changes: [] };
    }
    await check(tx, key, definition);
    const [row] = await tx
      .update(flags)
      .set({ definition, archived, version: before.version + 1, updatedAt: sql`now()`, updatedBy: actorId })
      .where(eq(flags.key, key))
      .returning();
    const after = flagRecord(row as typeof flags.$inferSelect);
    return { result: after, changes: [{ subject: "flag", key, action, before, after }] };
  });
}

/** The definition part of a stored flag (what the admin API can set). */
export function definitionOf(record: FlagRecord): FlagDefinition {
  const { key: _k, archived: _a, version: _v, createdAt: _c, updatedAt: _u, updatedBy: _b, ...definition } = record;
  return definition;
}

export function deleteFlag(config: Config, actorId: string | null, key: string, precondition: Precondition) {
  return writeFlags(config, actorId, async (tx) => {
    const before = flagRecord(await loadFlag(tx, key));
    assertVersion(before, precondition.expected, precondition.required);
    const dependants = (await tx.select({ key: flags.key, definition: flags.definition }).from(flags)).filter(
      (f) => f.key !== key && f.definition.dependencies.some((d) => d.feature === key),
    );
    if (dependants.length) {
      throw new ApiError(
        "CONFLICT",
        `Flags depend on ${JSON.stringify(key)}: ${dependants.map((d) => d.key).join(", ")}. Remove those dependencies first.`,
      );
    }
    await tx.delete(flags).where(eq(flags.key, key));
    return { result: before, changes: [{ subject: "flag", key, action: "deleted", before, after: null }] };
  });
}

// Segments --------------------------------------------------------------------------------------------------

export interface SegmentInput {
  name: string;
  description?: string | null;
  constraints: Constraint[];
}

function checkSegment(constraints: Constraint[]): void {
  const errors = validateSegment({ constraints });
  if (errors.length) throw invalid(prefixed("body", errors));
}

export function saveSegment(config: Config, actorId: string | null, id: number | undefined, input: SegmentInput) {
  checkSegment(input.constraints);
  return writeFlags(config, actorId, async (tx) => {
    const [existing] = id === undefined ? [] : await tx.select().from(flagSegments).where(eq(flagSegments.id, id));
    if (id !== undefined && !existing) throw new ApiError("NOT_FOUND", `No segment with id ${id}.`);
    const values = { name: input.name, description: input.description ?? null, constraints: input.constraints };
    const [row] = existing
      ? await tx
          .update(flagSegments)
          .set({ ...values, version: existing.version + 1, updatedAt: sql`now()` })
          .where(eq(flagSegments.id, existing.id))
          .returning()
      : await tx
          .insert(flagSegments)
          .values({ id: sql`(select coalesce(max(id), 0) + 1 from flag_segments)`, ...values })
          .returning();
    const saved = row as typeof flagSegments.$inferSelect;
    const after = segmentOf(saved);
    const before = existing ? segmentOf(existing) : null;
    return {
      result: { ...after, version: saved.version },
      changes: [
        { subject: "flag_segment", key: String(saved.id), action: existing ? "updated" : "created", before, after },
      ],
    };
  });
}

export function deleteSegment(config: Config, actorId: string | null, id: number) {
  return writeFlags(config, actorId, async (tx) => {
    const [existing] = await tx.select().from(flagSegments).where(eq(flagSegments.id, id));
    if (!existing) throw new ApiError("NOT_FOUND", `No segment with id ${id}.`);
    const users = (await tx.select({ key: flags.key, definition: flags.definition }).from(flags)).filter((f) =>
      f.definition.strategies.some((s) => s.segments?.includes(id)),
    );
    if (users.length) {
      throw new ApiError(
        "CONFLICT",
        `Segment ${id} is used by ${users.map((u) => u.key).join(", ")}; remove it there first.`,
      );
    }
    await tx.delete(flagSegments).where(eq(flagSegments.id, id));
    const before = segmentOf(existing);
    return {
      result: before,
      changes: [{ subject: "flag_segment", key: String(id), action: "deleted", before, after: null }],
    };
  });
}

// Overrides -------------------------------------------------------------------------------------------------

export interface OverrideInput {
  value?: JsonValue;
  variant?: string;
  reason: string;
  expiresAt?: string | null;
}

/** Sets the same override for one or many users of a flag (an existing override of theirs is replaced). */
export function setOverrides(
  config: Config,
  actorId: string | null,
  key: string,
  userIds: string[],
  input: OverrideInput,
) {
  return writeFlags(config, actorId, async (tx) => {
    const flag = flagRecord(await loadFlag(tx, key));
    const rule: OverrideRule = { value: input.value, variant: input.variant, expiresAt: input.expiresAt ?? null };
    const errors = validateOverride(definitionOf(flag), rule);
    if (errors.length) throw invalid(prefixed("body", errors));
    if (input.expiresAt && Date.parse(input.expiresAt) <= Date.now()) {
      throw invalid([{ field: "body.expiresAt", message: "must be in the future" }]);
    }
    const unique = [...new Set(userIds)];
    const before = await tx
      .select()
      .from(flagOverrides)
      .where(and(eq(flagOverrides.flagKey, key), inArray(flagOverrides.userId, unique)));
    const beforeOf = new Map(before.map((row) => [row.userId, row]));
    const values = unique.map((userId) => ({
      flagKey: key,
      userId,
      value: input.variant === undefined ? (input.value ?? null) : null,
      variant: input.variant ?? null,
      reason: input.reason,
      expiresAt: input.expiresAt ? new Date(input.expiresAt) : null,
      setBy: actorId,
    }));
    const rows = await tx
      .insert(flagOverrides)
      .values(values)
      .onConflictDoUpdate({
        target: [flagOverrides.flagKey, flagOverrides.userId],
        set: {
          value: sql`excluded.value`,
          variant: sql`excluded.variant`,
          reason: sql`excluded.reason`,
          expiresAt: sql`excluded.expires_at`,
          setBy: sql`excluded.set_by`,
          createdAt: sql`now()`,
        },
      })
      .returning();
    const changes: Change[] = rows.map((row) => {
      const previous = beforeOf.get(row.userId);
      return {
        subject: "flag_override",
        key: `${key}/${row.userId}`,
        action: "set",
        before: previous ? overrideView(previous) : null,
        after: overrideView(row),
      };
    });
    return { result: rows.map(overrideView), changes };
  });
}

export function removeOverride(config: Config, actorId: string | null, key: string, userId: string) {
  return writeFlags(config, actorId, async (tx) => {
    const [row] = await tx.delete(flagOverrides).where(overrideKey(key, userId)).returning();
    if (!row)
      throw new ApiError("NOT_FOUND", `No override of ${JSON.stringify(key)} for user ${JSON.stringify(userId)}.`);
    const before = overrideView(row);
    return {
      result: before,
      changes: [{ subject: "flag_override", key: `${key}/${userId}`, action: "removed", before, after: null }],
    };
  });
}

/** Deletes every override past its expiry (they already stopped applying; this keeps the table small). */
export function removeExpiredOverrides(config: Config, actorId: string | null) {
  return writeFlags(config, actorId, async (tx) => {
    const rows = await tx
      .delete(flagOverrides)
      .where(and(isNotNull(flagOverrides.expiresAt), lte(flagOverrides.expiresAt, sql`now()`)))
      .returning();
    const changes: Change[] = rows.map((row) => ({
      subject: "flag_override",
      key: `${row.flagKey}/${row.userId}`,
      action: "expired",
      before: overrideView(row),
      after: null,
    }));
    return { result: { removed: rows.length }, changes };
  });
}

function overrideView(row: typeof flagOverrides.$inferSelect) {
  return {
    flagKey: row.flagKey,
    userId: row.userId,
    ...overrideOf(row),
    reason: row.reason,
    setBy: row.setBy,
    createdAt: row.createdAt.toISOString(),
  };
}

export async function listOverrides(tx: Tx | Parameters<typeof loadFlag>[0], key: string) {
  await loadFlag(tx, key);
  const rows = await tx
    .select()
    .from(flagOverrides)
    .where(eq(flagOverrides.flagKey, key))
    .orderBy(asc(flagOverrides.userId));
  return rows.map(overrideView);
}
