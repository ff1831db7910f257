// The evaluation engine. `compile` turns a snapshot into a RuleSet once per version: regexes, ranges, semvers and
// payloads parsed, every result object built and frozen. `evaluate` then walks it without parsing or allocating,
// and never throws: a flag whose rules do not compile, or that fails while evaluating, serves its default (ERROR).
import { log } from "../observability/log.ts";
import { at, compileConstraint, parseIsoDate, RuleError, type Test, timeOf } from "./constraints.ts";
import {
  type Constraint,
  DISABLED_VARIANT,
  type Evaluation,
  type EvaluationContext,
  type FlagRules,
  type JsonValue,
  type OverrideRule,
  type Payload,
  type Snapshot,
} from "./model.ts";
import { type CompiledStrategy, compileStrategy, type StrategyScope, strategyMatches } from "./strategies.ts";
import {
  compileVariants,
  type FlagShape,
  frozen,
  type MatchReason,
  matchOutcomes,
  type Outcomes,
  outcome,
  overriddenVariant,
  payloadValue,
  type VariantSet,
  variantResult,
} from "./variants.ts";

export interface CompileOptions {
  /** applicationHostname matches this name (Node SDKs read HOSTNAME; the edge has none: without it, nobody). */
  hostname?: string;
  /** Told of each broken flag (once per rule set); by default one error log line per flag and version. */
  onError?: (flagKey: string, flagVersion: number, message: string) => void;
}

interface Dependency {
  readonly key: string;
  readonly enabled: boolean;
  readonly variants: ReadonlySet<string> | undefined;
  /** Resolved once every flag is compiled; undefined when missing or itself dependent (Unleash: one level). */
  parent: CompiledFlag | undefined;
}

type OffReason = "DISABLED" | "DEFAULT" | "SCHEDULED_INACTIVE" | "ERROR";

interface CompiledFlag {
  readonly key: string;
  readonly version: number;
  readonly enabled: boolean;
  /** undefined: every environment. */
  readonly environments: ReadonlySet<string> | undefined;
  /** The schedule as [start, end) in ms; undefined: always. */
  readonly window: readonly [number, number] | undefined;
  readonly dependencies: readonly Dependency[];
  /** undefined: no strategies configured, so on for everyone. */
  readonly strategies: readonly CompiledStrategy[] | undefined;
  readonly variants: VariantSet | undefined;
  readonly overrides: ReadonlyMap<string, { readonly expiresAt: number; readonly outcome: Evaluation }> | undefined;
  readonly off: Outcomes<OffReason>;
  /** Enabled without a variant. */
  readonly on: Outcomes<MatchReason>;
  /** Why the rules do not compile (the flag then serves its default with reason ERROR). */
  readonly error: string | undefined;
}

export interface RuleSet {
  /** The snapshot's (rule-set) version. */
  readonly version: number;
  readonly builtAt: string;
  /** Every flag key, in snapshot order. */
  readonly keys: readonly string[];
  readonly flags: ReadonlyMap<string, CompiledFlag>;
}

const NOT_FOUND = outcome(false, DISABLED_VARIANT, false, "NOT_FOUND", 0);
const UNEVALUABLE = outcome(false, DISABLED_VARIANT, false, "ERROR", 0);
const EMPTY_CONTEXT: EvaluationContext = Object.freeze({});

// Broken flags already told, per rule set (each flag is told once, whatever fails and however often).
const hooks = new WeakMap<RuleSet, { onError: NonNullable<CompileOptions["onError"]>; told: Set<string> }>();
const logged = new Set<string>();

/** The default hook: one error line per flag and version for the isolate's lifetime (bounded). */
export function logBrokenFlag(flagKey: string, flagVersion: number, message: string): void {
  const id = `${flagVersion}\u0000${flagKey}`;
  if (logged.has(id)) return;
  if (logged.size >= 10_000) logged.clear();
  logged.add(id);
  log("error", "flag rules cannot be evaluated; serving the default", {
    flag: flagKey,
    flag_version: flagVersion,
    error: message,
  });
}

function tell(ruleSet: RuleSet, flag: CompiledFlag, message: string): void {
  try {
    const hook = hooks.get(ruleSet);
    if (!hook || hook.told.has(flag.key)) return;
    hook.told.add(flag.key);
    hook.onError(flag.key, flag.version, message);
  } catch {
    // Reporting must not turn a served default into a thrown error.
  }
}

const messageOf = (error: unknown) =>
  error instanceof RuleError && error.field !== ""
    ? `${error.field} ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);

function offOutcomes(shape: FlagShape): Outcomes<OffReason> {
  const value = shape.type === "boolean" ? false : shape.defaultValue;
  return {
    DISABLED: outcome(false, DISABLED_VARIANT, value, "DISABLED", shape.version),
    DEFAULT: outcome(false, DISABLED_VARIANT, value, "DEFAULT", shape.version),
    SCHEDULED_INACTIVE: outcome(false, DISABLED_VARIANT, value, "SCHEDULED_INACTIVE", shape.version),
    ERROR: outcome(false, DISABLED_VARIANT, value, "ERROR", shape.version),
  };
}

/** A frozen copy of a JSON value (null for anything that is not one). */
function jsonCopy(value: JsonValue | undefined): JsonValue {
  try {
    return frozen(structuredClone(value ?? null));
  } catch {
    return null;
  }
}

function isoTime(text: string | null | undefined, field: string, open: number): number {
  if (text == null) return open;
  const time = parseIsoDate(text);
  if (Number.isNaN(time)) throw new RuleError(field, "is not an ISO 8601 time");
  return time;
}

function compileOverrides(
  rules: Readonly<Record<string, OverrideRule>> | undefined,
  shape: FlagShape,
  payloadOf: (variant: string) => Payload | undefined,
): CompiledFlag["overrides"] {
  if (rules == null) return undefined;
  const overrides = new Map<string, { expiresAt: number; outcome: Evaluation }>();
  for (const [userId, rule] of Object.entries(rules)) {
    const named = (name: string) => variantResult(name, payloadOf(name));
    let served: Evaluation;
    if (rule.value !== undefined && shape.type === "boolean") {
      served =
        rule.value === true
          ? outcome(true, named(rule.variant ?? "override"), true, "OVERRIDE", shape.version)
          : outcome(false, DISABLED_VARIANT, false, "OVERRIDE", shape.version);
    } else if (rule.value !== undefined) {
      const value = jsonCopy(rule.value);
      served = outcome(true, named(rule.variant ?? "override"), value, "OVERRIDE", shape.version);
    } else if (rule.variant !== undefined) {
      // A variant since removed from the flag still wins, without a payload (the value falls back to the default).
      const value = payloadValue(shape.type, payloadOf(rule.variant), shape.defaultValue);
      served = outcome(true, named(rule.variant), value, "OVERRIDE", shape.version);
    } else {
      continue;
    }
    // An unreadable expiry is treated as expired (NaN never compares below the time).
    const expiresAt = rule.expiresAt == null ? Number.POSITIVE_INFINITY : parseIsoDate(rule.expiresAt);
    overrides.set(userId, { expiresAt, outcome: served });
  }
  return overrides.size > 0 ? overrides : undefined;
}

function compileFlag(
  flag: FlagRules,
  segments: StrategyScope["segments"],
  overrides: Snapshot["overrides"],
  options: CompileOptions,
): CompiledFlag {
  const version = typeof flag.version === "number" ? flag.version : 0;
  const defaultValue = flag.type === "boolean" ? false : jsonCopy(flag.defaultValue);
  const shape: FlagShape = { type: flag.type, defaultValue, version };
  const off = offOutcomes(shape);
  try {
    const scope: StrategyScope = { flag: { ...shape, key: flag.key }, segments, hostname: options.hostname };
    const strategies =
      flag.strategies.length === 0
        ? undefined
        : flag.strategies.flatMap((strategy, i) =>
            strategy.disabled === true ? [] : (at(`strategies[${i}]`, () => compileStrategy(strategy, scope)) ?? []),
          );
    const variants = at("variants", () =>
      compileVariants(flag.variants, flag.key, flag.variants?.[0]?.stickiness, shape),
    );
    const payloads = new Map<string, Payload | undefined>();
    for (const variant of [...flag.strategies.flatMap((s) => s.variants ?? []), ...(flag.variants ?? [])]) {
      payloads.set(variant.name, variant.payload);
    }
    const own = Object.hasOwn(overrides ?? {}, flag.key) ? overrides[flag.key] : undefined;
    const schedule = flag.schedule;
    const window =
      schedule == null || (schedule.start == null && schedule.end == null)
        ? undefined
        : ([
            isoTime(schedule.start, "schedule.start", Number.NEGATIVE_INFINITY),
            isoTime(schedule.end, "schedule.end", Number.POSITIVE_INFINITY),
          ] as const);
    return {
      key: flag.key,
      version,
      enabled: flag.enabled === true,
      environments: flag.environments?.length ? new Set(flag.environments) : undefined,
      window,
      dependencies: (flag.dependencies ?? []).map((dependency) => ({
        key: dependency.feature,
        enabled: dependency.enabled !== false,
        variants: dependency.variants?.length ? new Set(dependency.variants) : undefined,
        parent: undefined,
      })),
      strategies,
      variants,
      overrides: at("overrides", () => compileOverrides(own, shape, (name) => payloads.get(name))),
      off,
      on: matchOutcomes(DISABLED_VARIANT, flag.type === "boolean" ? true : defaultValue, version),
      error: undefined,
    };
  } catch (error) {
    const broken: CompiledFlag = {
      key: flag.key,
      version,
      enabled: false,
      environments: undefined,
      window: undefined,
      dependencies: [],
      strategies: [],
      variants: undefined,
      overrides: undefined,
      off,
      on: matchOutcomes(DISABLED_VARIANT, defaultValue, version),
      error: messageOf(error),
    };
    return broken;
  }
}

function compileSegment(constraints: readonly Constraint[] | undefined): readonly Test[] | RuleError {
  try {
    return at("constraints", () => (constraints ?? []).map((c, i) => at(`[${i}]`, () => compileConstraint(c))));
  } catch (error) {
    return error instanceof RuleError ? error : new RuleError("constraints", messageOf(error));
  }
}

/** Compiles a snapshot. A flag that cannot compile is kept, broken (it serves its default with reason ERROR). */
export function compile(snapshot: Snapshot, options: CompileOptions = {}): RuleSet {
  const segments = new Map<number, readonly Test[] | RuleError>();
  for (const segment of snapshot.segments ?? []) {
    segments.set(segment.id, compileSegment(segment.constraints));
  }
  const flags = new Map<string, CompiledFlag>();
  for (const flag of snapshot.flags) {
    if (typeof flag?.key !== "string") continue;
    flags.set(flag.key, compileFlag(flag, segments, snapshot.overrides, options));
  }
  for (const flag of flags.values()) {
    for (const dependency of flag.dependencies) {
      const parent = flags.get(dependency.key);
      dependency.parent = parent && parent.dependencies.length === 0 ? parent : undefined;
    }
  }
  const ruleSet: RuleSet = { version: snapshot.version, builtAt: snapshot.builtAt, keys: [...flags.keys()], flags };
  hooks.set(ruleSet, { onError: options.onError ?? logBrokenFlag, told: new Set() });
  for (const flag of flags.values()) if (flag.error !== undefined) tell(ruleSet, flag, flag.error);
  return ruleSet;
}

/** Evaluates one flag for a context. Never throws. */
export function evaluate(ruleSet: RuleSet, flagKey: string, context: EvaluationContext): Evaluation {
  let flag: CompiledFlag | undefined;
  try {
    flag = ruleSet.flags.get(flagKey);
    if (flag === undefined) return NOT_FOUND;
    return evaluateFlag(flag, context ?? EMPTY_CONTEXT);
  } catch (error) {
    if (flag === undefined) return UNEVALUABLE;
    tell(ruleSet, flag, messageOf(error));
    return flag.off.ERROR;
  }
}

/** Evaluates every flag of the rule set for a context. Never throws. */
export function evaluateAll(ruleSet: RuleSet, context: EvaluationContext): Record<string, Evaluation> {
  const all: Record<string, Evaluation> = Object.create(null); // a flag may be called "__proto__"
  try {
    for (const key of ruleSet.keys) all[key] = evaluate(ruleSet, key, context);
  } catch {
    // Only a malformed rule set gets here: what was evaluated is still served.
  }
  return all;
}

function evaluateFlag(flag: CompiledFlag, context: EvaluationContext): Evaluation {
  if (flag.error !== undefined) return flag.off.ERROR;
  if (flag.overrides !== undefined && context.userId !== undefined) {
    const override = flag.overrides.get(context.userId);
    if (override && (override.expiresAt === Number.POSITIVE_INFINITY || timeOf(context) < override.expiresAt)) {
      return override.outcome;
    }
  }
  if (flag.window !== undefined) {
    const time = timeOf(context);
    if (!(time >= flag.window[0] && time < flag.window[1])) return flag.off.SCHEDULED_INACTIVE;
  }
  if (!flag.enabled) return flag.off.DISABLED;
  const environment = context.environment;
  if (flag.environments !== undefined && (environment === undefined || !flag.environments.has(environment))) {
    return flag.off.DISABLED;
  }
  for (const dependency of flag.dependencies) if (!dependencyMet(dependency, context)) return flag.off.DISABLED;
  if (flag.strategies === undefined) return served(flag, flag.variants, context, "DEFAULT");
  for (const strategy of flag.strategies) {
    if (strategyMatches(strategy, context)) {
      return served(flag, strategy.variants ?? flag.variants, context, strategy.split ? "SPLIT" : "TARGETING_MATCH");
    }
  }
  return flag.off.DEFAULT;
}

/** Unleash's dependency rule, judged on the parent's own evaluation for the same context. */
function dependencyMet(dependency: Dependency, context: EvaluationContext): boolean {
  const parent = dependency.parent;
  if (parent === undefined) return false;
  const result = evaluateFlag(parent, context);
  if (result.reason === "ERROR") return false;
  if (!dependency.enabled) return !result.enabled;
  return result.enabled && (dependency.variants === undefined || dependency.variants.has(result.variant.name));
}

/** The enabled flag's evaluation: a variant when it has some; SPLIT whenever the hash chose among weights. */
function served(
  flag: CompiledFlag,
  variants: VariantSet | undefined,
  context: EvaluationContext,
  reason: MatchReason,
): Evaluation {
  if (variants === undefined) return flag.on[reason];
  const overridden = variants.overrides.length > 0 ? overriddenVariant(variants, context) : undefined;
  if (overridden !== undefined) return overridden.outcomes[reason];
  const picked = variants.pick(context);
  if (picked === undefined) return flag.on[reason];
  return picked.outcomes[variants.weighted ? "SPLIT" : reason];
}
