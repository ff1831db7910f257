// Wire schemas of the flag APIs (admin, import, evaluation). Shapes only: the rules a shape cannot express
// (regexes compile, weights add up, no cycles, segments exist) are checked by validate.ts at write time.
import { z } from "@hono/zod-openapi";
import { type JsonValue, OPERATORS, REASONS, VALUE_TYPES } from "./model.ts";

// Routes by key would shadow these paths, so no flag may be called by their names.
const RESERVED_KEYS = new Set(["segments", "import", "export", "playground", "overrides"]);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Control and format characters (Unicode Cc, Cf: U+202E, U+200B-U+200D, U+2060, U+FEFF, ...) are invisible or
// reorder text, so two names that differ could look identical to an admin.
const HIDDEN_CHARACTER = /[\p{Cc}\p{Cf}]/u;

const codePoint = (ch: string) => `U+${(ch.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`;

/** A name shown to admins (flag key, segment, variant, tag, ...): well-formed UTF-8 that looks like what it is. */
export const identifier = () =>
  z
    .string()
    .min(1)
    .refine((name) => !LONE_SURROGATE.test(name), "must be well-formed UTF-8 (no lone surrogates)")
    .superRefine((name, ctx) => {
      const hidden = HIDDEN_CHARACTER.exec(name)?.[0];
      if (hidden)
        ctx.addIssue({
          code: "custom",
          message: `must not contain control or format characters (${codePoint(hidden)})`,
        });
    });

const FlagKey = identifier()
  .max(255)
  .refine((key) => !RESERVED_KEYS.has(key), `must not be one of ${[...RESERVED_KEYS].join(", ")}`)
  // URLs resolve these as path segments, so no route by key could reach such a flag.
  .refine((key) => key !== "." && key !== "..", 'must not be "." or ".."')
  .describe("Any UTF-8 name");

// Any JSON value. A custom schema, not a recursive z.lazy: the OpenAPI generator cannot walk recursion.
const JsonValueSchema = z
  .custom<JsonValue>((value) => value !== undefined, "must be a JSON value")
  .openapi({ description: "Any JSON value", type: ["string", "number", "boolean", "object", "array", "null"] });

const ConstraintSchema = z
  .object({
    contextName: identifier(),
    operator: z.enum(OPERATORS),
    values: z.array(z.string()).optional(),
    value: z.string().optional(),
    caseInsensitive: z.boolean().optional(),
    inverted: z.boolean().optional(),
  })
  .openapi("FlagConstraint");

const PayloadSchema = z.object({ type: z.string().min(1), value: z.string() });

export const VariantSchema = z
  .object({
    name: identifier(),
    weight: z.number().int().min(0).max(1000),
    weightType: z.enum(["variable", "fix"]).optional(),
    stickiness: identifier().optional(),
    payload: PayloadSchema.optional(),
    overrides: z.array(z.object({ contextName: identifier(), values: z.array(z.string()) })).optional(),
  })
  .openapi("FlagVariant");

export const StrategySchema = z
  .object({
    name: identifier(),
    parameters: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
    constraints: z.array(ConstraintSchema).optional(),
    segments: z.array(z.number().int()).optional(),
    variants: z.array(VariantSchema).optional(),
    disabled: z.boolean().nullish(),
    title: identifier().or(z.literal("")).nullish(),
    sortOrder: z.number().optional(),
    id: z.string().optional(),
  })
  .openapi("FlagStrategy");

export const DependencySchema = z.object({
  feature: identifier(),
  enabled: z.boolean().optional(),
  variants: z.array(identifier()).optional(),
});

const IsoTime = z.iso.datetime({ offset: true });

export const ScheduleSchema = z
  .object({ start: IsoTime.nullish(), end: IsoTime.nullish() })
  .openapi("FlagSchedule", { description: "Window in which the flag can be on; either end may be open" });

/** Everything an admin may set on a flag, with defaults for a new one. */
export const FlagFields = z.object({
  description: z.string().max(2000).default(""),
  type: z.enum(VALUE_TYPES).default("boolean").describe("Value type"),
  kind: identifier().max(50).default("release").describe("Unleash feature type (release, experiment, ...)"),
  enabled: z.boolean().default(false).describe("The kill switch"),
  environments: z.array(identifier()).default([]).describe("Environments the flag is on in; empty: all"),
  strategies: z.array(StrategySchema).default([]),
  variants: z.array(VariantSchema).default([]),
  dependencies: z.array(DependencySchema).default([]),
  defaultValue: JsonValueSchema.optional().describe("Value when off or when no variant applies (non-boolean types)"),
  schedule: ScheduleSchema.nullable().default(null),
  tags: z.array(identifier().max(100)).default([]),
  unleash: z.record(z.string(), z.unknown()).default({}).describe("Other Unleash fields, kept as given"),
});

export const FlagCreate = FlagFields.extend({ key: FlagKey }).openapi("FlagCreate");
export const FlagPatch = FlagFields.partial()
  .extend({ version: z.number().int().positive().optional().describe("Expected version (or send If-Match)") })
  .openapi("FlagPatch");

export const Flag = FlagFields.extend({
  key: z.string(),
  defaultValue: JsonValueSchema,
  archived: z.boolean(),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string().nullable(),
}).openapi("Flag");

export const SegmentInput = z
  .object({
    name: identifier().max(200),
    description: z.string().max(2000).nullish(),
    constraints: z.array(ConstraintSchema),
  })
  .openapi("FlagSegmentInput");

export const OverrideInput = z
  .object({
    value: JsonValueSchema.optional().describe("For a boolean flag, on or off; otherwise the value served"),
    variant: identifier().optional().describe("One of the flag's variants"),
    reason: z.string().trim().min(1).max(500).describe("Why; shown in the audit trail"),
    expiresAt: IsoTime.nullish().describe("When the override stops applying; absent: never"),
  })
  .refine((o) => (o.value === undefined) !== (o.variant === undefined), {
    message: "give exactly one of value or variant",
    path: ["value"],
  })
  .openapi("FlagOverrideInput");

export const BulkOverrideInput = z
  .object({
    userIds: z.array(identifier().max(200)).min(1).max(1000),
    value: JsonValueSchema.optional(),
    variant: identifier().optional(),
    reason: z.string().trim().min(1).max(500),
    expiresAt: IsoTime.nullish(),
  })
  .refine((o) => (o.value === undefined) !== (o.variant === undefined), {
    message: "give exactly one of value or variant",
    path: ["value"],
  })
  .openapi("FlagBulkOverrideInput");

// Unleash SDKs send unset context fields as null: null is taken as absent.
const absentIfNull = <T extends z.ZodType>(schema: T) =>
  schema
    .nullish()
    .transform((value) => value ?? undefined)
    .optional();

const withoutNulls = (properties: Record<string, string | null>) =>
  Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== null)) as Record<string, string>;

/** The evaluation context a client sends (Unleash's fields; custom ones in properties); null means absent. */
export const ContextSchema = z
  .object({
    userId: absentIfNull(z.string().max(200)),
    sessionId: absentIfNull(z.string().max(200)),
    remoteAddress: absentIfNull(z.string().max(100)),
    environment: absentIfNull(z.string().max(100)),
    appName: absentIfNull(z.string().max(200)),
    currentTime: absentIfNull(IsoTime),
    properties: absentIfNull(z.record(z.string(), z.string().max(1000).nullable()).transform(withoutNulls)),
  })
  .openapi("FlagContext");

const VariantResultSchema = z.object({ name: z.string(), payload: PayloadSchema.optional(), enabled: z.boolean() });

export const EvaluationSchema = z
  .object({
    enabled: z.boolean(),
    variant: VariantResultSchema,
    value: JsonValueSchema,
    reason: z.enum(REASONS),
    version: z.number().int(),
  })
  .openapi("FlagEvaluation");

/** One feature of the Unleash client API; unknown fields pass through. */
export const UnleashFeatureSchema = z
  .object({
    name: FlagKey,
    description: z.string().nullish(),
    type: identifier().optional(),
    enabled: z.boolean(),
    stale: z.boolean().optional(),
    impressionData: z.boolean().optional(),
    project: z.string().optional(),
    strategies: z.array(StrategySchema).default([]),
    variants: z
      .array(VariantSchema)
      .nullish()
      .transform((v) => v ?? []),
    dependencies: z.array(DependencySchema).optional(),
  })
  .catchall(z.unknown())
  .openapi("UnleashFeature");

/** One segment of the Unleash client API. */
export const UnleashSegmentSchema = z
  .object({
    id: z.number().int(),
    name: identifier().optional(),
    description: z.string().nullish(),
    constraints: z.array(ConstraintSchema),
  })
  .openapi("UnleashSegment");

/** The Unleash client-API document (`GET /api/client/features`, export); unknown fields pass through. */
export const ClientFeaturesSchema = z
  .object({
    version: z.number().int().default(2),
    features: z.array(UnleashFeatureSchema),
    segments: z.array(UnleashSegmentSchema).default([]),
  })
  .catchall(z.unknown())
  .openapi("UnleashClientFeatures");

// Any JSON object, documented as `schema`: import checks each entry on its own, so one bad entry can be skipped.
const entryOf = (schema: string) =>
  z
    .custom<Record<string, unknown>>(
      (value) => typeof value === "object" && value !== null && !Array.isArray(value),
      "must be an object",
    )
    .openapi({ type: "object", allOf: [{ $ref: `#/components/schemas/${schema}` }] });

/** The import body: an Unleash client-API document whose features and segments are checked one by one. */
export const ImportDocumentSchema = z
  .object({
    version: z.number().int().default(2),
    features: z.array(entryOf("UnleashFeature")),
    segments: z.array(entryOf("UnleashSegment")).default([]),
  })
  .catchall(z.unknown())
  .openapi("UnleashImportDocument");
