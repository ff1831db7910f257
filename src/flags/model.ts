// The flag model: the Unleash client-API shapes (what import/export and Unleash SDKs speak) and the platform's
// own flag around them. Plain types only; validation lives in validate.ts, evaluation in evaluate.ts.

export const OPERATORS = [
  "IN",
  "NOT_IN",
  "STR_CONTAINS",
  "STR_STARTS_WITH",
  "STR_ENDS_WITH",
  "NUM_EQ",
  "NUM_GT",
  "NUM_GTE",
  "NUM_LT",
  "NUM_LTE",
  "DATE_AFTER",
  "DATE_BEFORE",
  "SEMVER_EQ",
  "SEMVER_GT",
  "SEMVER_LT",
  "SEMVER_GTE",
  "SEMVER_LTE",
  "REGEX",
  "IN_CIDR",
] as const;
export type Operator = (typeof OPERATORS)[number];

/** One Unleash constraint. List operators read `values`; single-value operators read `value`. */
export interface Constraint {
  contextName: string;
  operator: Operator;
  values?: string[];
  value?: string;
  caseInsensitive?: boolean;
  inverted?: boolean;
}

export interface Payload {
  type: string; // "string" | "json" | "csv" | "number" in Unleash
  value: string;
}

export interface Variant {
  name: string;
  weight: number;
  weightType?: "variable" | "fix";
  stickiness?: string;
  payload?: Payload;
  overrides?: { contextName: string; values: string[] }[];
}

export interface Strategy {
  name: string;
  parameters?: Record<string, string | number>;
  constraints?: Constraint[];
  segments?: number[];
  variants?: Variant[];
  disabled?: boolean | null;
  title?: string | null;
  sortOrder?: number;
  id?: string;
}

/** The flag is on only when `feature` is enabled (or, with `enabled: false`, off) and in one of `variants`. */
export interface Dependency {
  feature: string;
  enabled?: boolean;
  variants?: string[];
}

/** One feature of the Unleash client API (`GET /api/client/features`). Unknown fields are kept as given. */
export interface UnleashFeature {
  name: string;
  description?: string | null;
  type?: string;
  enabled: boolean;
  stale?: boolean;
  impressionData?: boolean;
  project?: string;
  strategies?: Strategy[];
  variants?: Variant[];
  dependencies?: Dependency[];
  [field: string]: unknown;
}

export interface Segment {
  id: number;
  name?: string;
  description?: string | null;
  constraints: Constraint[];
}

/** The Unleash client-API document: what import accepts and `GET /api/client/features` serves. */
export interface ClientFeatures {
  version: number;
  features: UnleashFeature[];
  segments?: Segment[];
  [field: string]: unknown;
}

export const VALUE_TYPES = ["boolean", "string", "number", "json"] as const;
export type ValueType = (typeof VALUE_TYPES)[number];
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** An optional window (ISO 8601, either end open) outside which the flag is off with reason SCHEDULED_INACTIVE. */
interface Schedule {
  start?: string | null;
  end?: string | null;
}

/** What the flags table stores for a key, beside its archive state and version (the admin API's flag body). */
export interface FlagDefinition {
  description: string;
  /** The value type. A non-boolean flag's value is its variant's payload read as that type, else `defaultValue`. */
  type: ValueType;
  /** Unleash's feature type: release, experiment, operational, kill-switch, permission. */
  kind: string;
  enabled: boolean;
  /** Environments the flag is on in; empty means every environment. */
  environments: string[];
  strategies: Strategy[];
  variants: Variant[];
  dependencies: Dependency[];
  defaultValue: JsonValue;
  schedule: Schedule | null;
  tags: string[];
  /** Other Unleash fields (project, stale, impressionData, unknown ones) kept as imported, for a faithful export. */
  unleash: Record<string, unknown>;
}

/** The rules of one flag, as evaluation needs them. */
export interface FlagRules
  extends Pick<
    FlagDefinition,
    "type" | "enabled" | "environments" | "strategies" | "variants" | "dependencies" | "defaultValue" | "schedule"
  > {
  key: string;
  /** This flag's own version (bumped by every change to it). */
  version: number;
  /** What the Unleash client API serves beside the rules; evaluation ignores it. */
  presentation?: Pick<FlagDefinition, "description" | "kind" | "unleash">;
}

/** A per-user override: an active one wins over everything else. */
export interface OverrideRule {
  /** For a boolean flag, whether it is on; otherwise the value served. */
  value?: JsonValue;
  /** A variant name of the flag; its payload becomes the value. */
  variant?: string;
  /** ISO 8601; absent means it never expires. */
  expiresAt?: string | null;
}

/**
 * The whole rule set as one plain JSON document: what KV and isolate memory hold and `compile` turns into a
 * RuleSet. Archived flags are left out. `version` is the rule-set version, bumped by every write.
 */
export interface Snapshot {
  version: number;
  builtAt: string;
  flags: FlagRules[];
  segments: Segment[];
  /** flag key → user id → override. */
  overrides: Record<string, Record<string, OverrideRule>>;
}

/** The context a flag is evaluated for (Unleash's context; `properties` holds custom fields). */
export interface EvaluationContext {
  userId?: string;
  sessionId?: string;
  remoteAddress?: string;
  environment?: string;
  appName?: string;
  /** ISO 8601; defaults to now. Drives DATE_* constraints, schedules and override expiry. */
  currentTime?: string;
  properties?: Record<string, string>;
}

export const REASONS = [
  "DISABLED",
  "OVERRIDE",
  "TARGETING_MATCH",
  "SPLIT",
  "DEFAULT",
  "SCHEDULED_INACTIVE",
  "NOT_FOUND",
  "ERROR",
] as const;
export type Reason = (typeof REASONS)[number];

export interface VariantResult {
  name: string;
  payload?: Payload;
  enabled: boolean;
}

export interface Evaluation {
  enabled: boolean;
  variant: VariantResult;
  value: JsonValue;
  reason: Reason;
  /** The flag's version (0 when not found). */
  version: number;
}

/** The variant Unleash reports when none applies. */
export const DISABLED_VARIANT: VariantResult = Object.freeze({ name: "disabled", enabled: false });
