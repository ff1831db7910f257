// Import of an Unleash client-API document. Each feature and segment is checked on its own: its shape, then its
// rules against the rule set as it will be. By default one refused entry refuses the whole document; with
// `invalid: "skip"` every valid entry is stored and each refused one is reported with every field at fault.

import type { z } from "@hono/zod-openapi";
import { inArray, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { flagSegments, flags } from "../db/schema/flags.ts";
import { ApiError, type FieldError } from "../errors.ts";
import { canonicalJson } from "../json.ts";
import { definitionFromUnleash, type ImportedFeature, rulesOf } from "./interchange.ts";
import type { FlagDefinition, Segment } from "./model.ts";
import { UnleashFeatureSchema, UnleashSegmentSchema } from "./schema.ts";
import { type Change, flagRecord, invalid, segmentOf, type Tx, writeFlags } from "./store.ts";
import { validateFlag, validateSegment } from "./validate.ts";

type ImportMode = "merge" | "replace";
/** What an entry the platform refuses does: refuse the whole document (the default), or leave that entry out. */
type OnInvalid = "refuse" | "skip";

/** An entry left out, by its position in the document, with every field at fault. */
interface RefusedEntry {
  index: number;
  name?: string;
  id?: number;
  errors: FieldError[];
}

export interface ImportSummary {
  mode: ImportMode;
  created: string[];
  updated: string[];
  unchanged: number;
  removed: string[];
  segments: number;
  /** Only with invalid=skip: the features and segments left out. */
  refused?: { features: RefusedEntry[]; segments: RefusedEntry[] };
}

/** The document as the route parsed it: features and segments still unchecked, one object each. */
interface ImportDocument {
  features: Record<string, unknown>[];
  segments: Record<string, unknown>[];
}

type FlagRow = typeof flags.$inferSelect;
type SegmentRow = typeof flagSegments.$inferSelect;
type Entry<T> = { index: number; value: T };
type Candidate = { index: number; key: string; existing?: FlagRow; definition: FlagDefinition };

/**
 * Stores an Unleash client-API document. merge: its flags and segments are added or replace those of the
 * same key/id; others stay. replace: the document becomes the whole rule set (others are deleted, overrides
 * of deleted flags with them). A skipped entry counts as absent from the document.
 */
export function importFeatures(
  config: Config,
  actorId: string | null,
  doc: ImportDocument,
  mode: ImportMode,
  onInvalid: OnInvalid = "refuse",
) {
  const features = parseEntries(doc.features, UnleashFeatureSchema, "features");
  const segments = parseEntries(doc.segments, UnleashSegmentSchema, "segments");
  if (onInvalid === "refuse") refuseAny([...features.refused, ...segments.refused], invalidBody);

  return writeFlags(config, actorId, async (tx) => {
    const refused = { features: [...features.refused], segments: [...segments.refused] };
    const storedFlags = new Map((await tx.select().from(flags)).map((row) => [row.key, row]));
    const storedSegments = new Map((await tx.select().from(flagSegments)).map((row) => [row.id, row]));
    const unique = withoutDuplicates(features.parsed, refused.features, onInvalid);
    const keptSegments = checkSegments(segments.parsed, refused.segments, onInvalid);
    const candidates = unique.map(({ index, value }) => {
      const existing = storedFlags.get(value.name);
      return { index, key: value.name, existing, definition: definitionFromUnleash(value, existing?.definition) };
    });
    // The rule set as it will be: replace keeps nothing stored; merge keeps every other flag and segment.
    const segmentIds = new Set([...(mode === "merge" ? storedSegments.keys() : []), ...keptSegments.map((s) => s.id)]);
    const dependencies = new Map(
      mode === "merge" ? [...storedFlags].map(([key, row]) => [key, row.definition.dependencies]) : [],
    );
    for (const { key, definition } of candidates) dependencies.set(key, definition.dependencies);
    const accepted = checkFeatures(candidates, segmentIds, dependencies, refused.features, onInvalid);

    const summary: ImportSummary = { mode, created: [], updated: [], unchanged: 0, removed: [], segments: 0 };
    const changes = [
      ...(await storeSegments(tx, keptSegments, storedSegments, summary)),
      ...(mode === "replace"
        ? await removeTheRest(tx, accepted, keptSegments, storedFlags, storedSegments, summary)
        : []),
      ...(await storeFeatures(tx, actorId, accepted, summary)),
    ];
    if (onInvalid === "skip")
      summary.refused = { features: byIndex(refused.features), segments: byIndex(refused.segments) };
    if (changes.length)
      changes.unshift({
        subject: "flag_ruleset",
        key: "*",
        action: `imported_${mode}`,
        before: null,
        after: { ...summary },
      });
    return { result: summary, changes };
  });
}

/** Each entry parsed on its own; fields named as for the whole body (`body.features.3.name`). */
function parseEntries<S extends z.ZodType>(entries: Record<string, unknown>[], schema: S, list: string) {
  const parsed: Entry<z.output<S>>[] = [];
  const refused: RefusedEntry[] = [];
  for (const [index, entry] of entries.entries()) {
    const result = schema.safeParse(entry);
    if (result.success) {
      parsed.push({ index, value: result.data });
      continue;
    }
    const errors = result.error.issues.map((issue) => ({
      field: ["body", list, index, ...issue.path].map(String).join("."),
      message: issue.message,
    }));
    refused.push(refusal(index, entry, errors));
  }
  return { parsed, refused };
}

const refusal = (index: number, entry: { name?: unknown; id?: unknown }, errors: FieldError[]): RefusedEntry => ({
  index,
  ...(typeof entry.name === "string" ? { name: entry.name } : {}),
  ...(typeof entry.id === "number" ? { id: entry.id } : {}),
  errors,
});

/** Throws when anything was refused (the all-or-nothing mode). */
function refuseAny(entries: RefusedEntry[], error: (errors: FieldError[]) => ApiError = invalid): void {
  const errors = entries.flatMap((entry) => entry.errors);
  if (errors.length) throw error(errors);
}

// Shape errors read as the route's own validation would word them.
function invalidBody(errors: FieldError[]): ApiError {
  const summary = errors.map((e) => `${e.field} ${e.message}`).join("; ");
  return new ApiError("VALIDATION_FAILED", `The request body is invalid: ${summary}.`, { errors });
}

/** A feature name given twice: the whole document is refused, or the later ones are left out. */
function withoutDuplicates(
  features: Entry<ImportedFeature>[],
  refused: RefusedEntry[],
  onInvalid: OnInvalid,
): Entry<ImportedFeature>[] {
  const seen = new Set<string>();
  return features.filter(({ index, value }) => {
    if (!seen.has(value.name)) return seen.add(value.name);
    if (onInvalid === "refuse") {
      throw invalid([{ field: "body.features", message: `has ${JSON.stringify(value.name)} twice` }]);
    }
    refused.push(
      refusal(index, value, [{ field: `body.features[${index}].name`, message: "is used by an earlier feature" }]),
    );
    return false;
  });
}

/** The segments whose constraints are valid; the others refuse the document or are left out. */
function checkSegments(segments: Entry<Segment>[], refused: RefusedEntry[], onInvalid: OnInvalid): Segment[] {
  const bad = segments.flatMap(({ index, value }) => {
    const errors = prefixed(`body.segments[${index}]`, validateSegment(value));
    return errors.length ? [refusal(index, value, errors)] : [];
  });
  if (onInvalid === "refuse") refuseAny(bad);
  refused.push(...bad);
  return segments.filter(({ index }) => !bad.some((entry) => entry.index === index)).map(({ value }) => value);
}

/** The features whose rules hold in the rule set as it will be; the others refuse the document or are left out. */
function checkFeatures(
  candidates: Candidate[],
  segmentIds: ReadonlySet<number>,
  dependencies: ReadonlyMap<string, { feature: string }[]>,
  refused: RefusedEntry[],
  onInvalid: OnInvalid,
): Candidate[] {
  const scope = { segmentIds, dependenciesOf: (key: string) => dependencies.get(key)?.map((d) => d.feature) };
  const bad = candidates.flatMap(({ index, key, definition }) => {
    const errors = prefixed(`body.features[${index}]`, validateFlag({ ...rulesOf(key, definition, 1), key }, scope));
    return errors.length ? [refusal(index, { name: key }, errors)] : [];
  });
  if (onInvalid === "refuse") refuseAny(bad);
  refused.push(...bad);
  return candidates.filter(({ index }) => !bad.some((entry) => entry.index === index));
}

const prefixed = (prefix: string, errors: FieldError[]) =>
  errors.map((e) => ({ field: `${prefix}${e.field ? `.${e.field}` : ""}`, message: e.message }));

const byIndex = (entries: RefusedEntry[]) => [...entries].sort((a, b) => a.index - b.index);

async function storeSegments(
  tx: Tx,
  segments: Segment[],
  stored: Map<number, SegmentRow>,
  summary: ImportSummary,
): Promise<Change[]> {
  const changes: Change[] = [];
  for (const segment of segments) {
    const values = {
      name: segment.name ?? `segment-${segment.id}`,
      description: segment.description ?? null,
      constraints: segment.constraints,
    };
    const existing = stored.get(segment.id);
    if (existing && canonicalJson(segmentOf(existing)) === canonicalJson({ id: segment.id, ...values })) continue;
    await tx
      .insert(flagSegments)
      .values({ id: segment.id, ...values })
      .onConflictDoUpdate({
        target: flagSegments.id,
        set: { ...values, version: sql`${flagSegments.version} + 1`, updatedAt: sql`now()` },
      });
    summary.segments++;
    changes.push({
      subject: "flag_segment",
      key: String(segment.id),
      action: existing ? "updated" : "created",
      before: existing ? segmentOf(existing) : null,
      after: { id: segment.id, ...values },
    });
  }
  return changes;
}

/** replace: deletes every stored flag and segment the document does not (validly) hold. */
async function removeTheRest(
  tx: Tx,
  accepted: Candidate[],
  keptSegments: Segment[],
  storedFlags: Map<string, FlagRow>,
  storedSegments: Map<number, SegmentRow>,
  summary: ImportSummary,
): Promise<Change[]> {
  const keys = new Set(accepted.map((candidate) => candidate.key));
  const gone = [...storedFlags.values()].filter((row) => !keys.has(row.key));
  if (gone.length)
    await tx.delete(flags).where(
      inArray(
        flags.key,
        gone.map((row) => row.key),
      ),
    );
  summary.removed.push(...gone.map((row) => row.key));
  const ids = new Set(keptSegments.map((segment) => segment.id));
  const unused = [...storedSegments.values()].filter((row) => !ids.has(row.id));
  if (unused.length)
    await tx.delete(flagSegments).where(
      inArray(
        flagSegments.id,
        unused.map((row) => row.id),
      ),
    );
  return [
    ...gone.map(
      (row): Change => ({ subject: "flag", key: row.key, action: "deleted", before: flagRecord(row), after: null }),
    ),
    ...unused.map(
      (row): Change => ({
        subject: "flag_segment",
        key: String(row.id),
        action: "deleted",
        before: segmentOf(row),
        after: null,
      }),
    ),
  ];
}

async function storeFeatures(
  tx: Tx,
  actorId: string | null,
  accepted: Candidate[],
  summary: ImportSummary,
): Promise<Change[]> {
  const changes: Change[] = [];
  for (const { key, existing, definition } of accepted) {
    if (existing && !existing.archived && canonicalJson(existing.definition) === canonicalJson(definition)) {
      summary.unchanged++;
      continue;
    }
    const [row] = await tx
      .insert(flags)
      .values({ key, definition, updatedBy: actorId })
      .onConflictDoUpdate({
        target: flags.key,
        set: {
          definition,
          archived: false,
          version: sql`${flags.version} + 1`,
          updatedAt: sql`now()`,
          updatedBy: actorId,
        },
      })
      .returning();
    const after = flagRecord(row as FlagRow);
    (existing ? summary.updated : summary.created).push(key);
    changes.push({
      subject: "flag",
      key,
      action: existing ? "updated" : "created",
      before: existing ? flagRecord(existing) : null,
      after,
    });
  }
  return changes;
}
