// Write-time semantic validation: what the wire schemas cannot check on their own (regexes compile, operands
// parse, weights add up, segments exist, no dependency cycle). Each refusal names its field by path, e.g.
// `strategies[0].constraints[1].value`. The parsers are the evaluation's own, so whatever passes here compiles.
import type { FieldError } from "../errors.ts";
import {
  LIST_OPERATORS,
  parseIsoDate,
  parseNumber,
  parseSemver,
  type RuleError,
  regexOf,
  SUPPORTED_OPERATORS,
} from "./constraints.ts";
import { parseIpRange } from "./ip.ts";
import {
  type Constraint,
  type FlagRules,
  type JsonValue,
  type OverrideRule,
  type Segment,
  type Strategy,
  VALUE_TYPES,
  type ValueType,
  type Variant,
} from "./model.ts";

export interface ValidationScope {
  /** The ids of the segments that exist. */
  readonly segmentIds: ReadonlySet<number>;
  /** The dependency keys of a stored flag; undefined when there is no such flag. */
  dependenciesOf(key: string): readonly string[] | undefined;
}

/** A flag as written: its rules, without the version the store assigns. */
export type FlagInput = Omit<FlagRules, "version">;

const STRATEGY_NAMES: ReadonlySet<string> = new Set([
  "default",
  "userWithId",
  "gradualRolloutUserId",
  "gradualRolloutSessionId",
  "gradualRolloutRandom",
  "flexibleRollout",
  "remoteAddress",
  "applicationHostname",
]);
const ROLLOUT_PARAMETER: Record<string, string> = {
  gradualRolloutUserId: "percentage",
  gradualRolloutSessionId: "percentage",
  gradualRolloutRandom: "percentage",
  flexibleRollout: "rollout",
};
const PAYLOAD_TYPES = new Set(["string", "json", "csv", "number"]);
const WEIGHT_TOTAL = 1000;

type Errors = FieldError[];

export function validateFlag(flag: FlagInput, scope: ValidationScope): FieldError[] {
  const errors: Errors = [];
  const defaultError = VALUE_TYPES.includes(flag.type) ? valueError(flag.type, flag.defaultValue) : undefined;
  if (!VALUE_TYPES.includes(flag.type))
    errors.push({ field: "type", message: `must be one of ${VALUE_TYPES.join(", ")}` });
  if (defaultError) errors.push({ field: "defaultValue", message: defaultError });
  validateSchedule(flag.schedule, errors);
  for (const [i, strategy] of flag.strategies.entries())
    validateStrategy(strategy, `strategies[${i}]`, flag, scope, errors);
  validateVariants(flag.variants, "variants", flag.type, errors);
  validateDependencies(flag, scope, errors);
  return errors;
}

/** A segment's constraints (the fields are `constraints[i]…`). */
export function validateSegment(segment: Pick<Segment, "constraints">): FieldError[] {
  const errors: Errors = [];
  validateConstraints(segment.constraints, "constraints", errors);
  return errors;
}

/** An override of `flag`: a value of the flag's type and/or one of its variants, with a readable expiry. */
export function validateOverride(
  flag: Pick<FlagRules, "type" | "variants" | "strategies">,
  override: OverrideRule,
): FieldError[] {
  const errors: Errors = [];
  if (override.value === undefined && override.variant === undefined) {
    errors.push({ field: "value", message: "or variant is required" });
  }
  if (override.value !== undefined) {
    const error = valueError(flag.type, override.value);
    if (error) errors.push({ field: "value", message: error });
  }
  if (override.variant !== undefined) {
    const names = new Set([...flag.variants, ...flag.strategies.flatMap((s) => s.variants ?? [])].map((v) => v.name));
    if (!names.has(override.variant)) {
      const known = names.size > 0 ? `one of ${[...names].join(", ")}` : "a variant, and the flag has none";
      errors.push({ field: "variant", message: `must be ${known}` });
    }
  }
  if (override.expiresAt != null && Number.isNaN(parseIsoDate(override.expiresAt))) {
    errors.push({ field: "expiresAt", message: "is not an ISO 8601 time" });
  }
  return errors;
}

/** What is wrong with a value a flag of `type` serves (its default, an override's value): it must be of that type. */
function valueError(type: ValueType, value: JsonValue | undefined): string | undefined {
  if (type === "json") return value === undefined ? "is required for a json flag" : undefined;
  const fits = type === "number" ? typeof value === "number" && Number.isFinite(value) : typeof value === type;
  return fits ? undefined : `must be a ${type} (the flag's type)`;
}

function validateSchedule(schedule: FlagInput["schedule"], errors: Errors): void {
  if (schedule == null) return;
  const start = schedule.start == null ? Number.NEGATIVE_INFINITY : parseIsoDate(schedule.start);
  const end = schedule.end == null ? Number.POSITIVE_INFINITY : parseIsoDate(schedule.end);
  if (Number.isNaN(start)) errors.push({ field: "schedule.start", message: "is not an ISO 8601 time" });
  if (Number.isNaN(end)) errors.push({ field: "schedule.end", message: "is not an ISO 8601 time" });
  if (start >= end) errors.push({ field: "schedule.end", message: "must be after schedule.start" });
}

function validateStrategy(strategy: Strategy, path: string, flag: FlagInput, scope: ValidationScope, errors: Errors) {
  if (!STRATEGY_NAMES.has(strategy.name)) {
    errors.push({ field: `${path}.name`, message: `must be one of ${[...STRATEGY_NAMES].join(", ")}` });
  }
  const parameters = strategy.parameters ?? {};
  const rollout = ROLLOUT_PARAMETER[strategy.name];
  if (rollout !== undefined) {
    const value = parameters[rollout];
    const percent = typeof value === "number" ? value : parseNumber(value);
    if (!(percent >= 0 && percent <= 100)) {
      errors.push({ field: `${path}.parameters.${rollout}`, message: "must be a number from 0 to 100" });
    }
  }
  if (strategy.name === "remoteAddress") {
    const entries = String(parameters.IPs ?? "")
      .split(",")
      .map((entry) => entry.trim());
    const bad = entries.filter((entry) => parseIpRange(entry) === undefined);
    if (bad.length > 0) {
      const message = `must be IP addresses or CIDR ranges separated by commas; not ${bad.map((b) => JSON.stringify(b)).join(", ")}`;
      errors.push({ field: `${path}.parameters.IPs`, message });
    }
  }
  validateConstraints(strategy.constraints ?? [], `${path}.constraints`, errors);
  for (const [i, id] of (strategy.segments ?? []).entries()) {
    if (!scope.segmentIds.has(id))
      errors.push({ field: `${path}.segments[${i}]`, message: `is not a known segment (${id})` });
  }
  validateVariants(strategy.variants ?? [], `${path}.variants`, flag.type, errors);
}

function validateConstraints(constraints: readonly Constraint[], path: string, errors: Errors): void {
  for (const [i, constraint] of constraints.entries()) {
    const field = `${path}[${i}]`;
    const operator: string = constraint.operator;
    if (typeof constraint.contextName !== "string" || constraint.contextName === "") {
      errors.push({ field: `${field}.contextName`, message: "is required" });
    }
    if (!SUPPORTED_OPERATORS.has(operator)) {
      errors.push({ field: `${field}.operator`, message: `must be one of ${[...SUPPORTED_OPERATORS].join(", ")}` });
    } else if (LIST_OPERATORS.has(operator)) {
      if (!Array.isArray(constraint.values)) errors.push({ field: `${field}.values`, message: "is required" });
      else if (operator === "IN_CIDR") {
        for (const [j, value] of constraint.values.entries()) {
          if (!parseIpRange(value))
            errors.push({ field: `${field}.values[${j}]`, message: "is not an IP address or CIDR range" });
        }
      }
    } else {
      const problem = singleValueProblem(operator, constraint);
      if (problem) errors.push({ field: `${field}.value`, message: problem });
    }
  }
}

function singleValueProblem(operator: string, constraint: Constraint): string | undefined {
  const value = constraint.value;
  if (typeof value !== "string") return "is required";
  if (operator.startsWith("NUM_") && Number.isNaN(parseNumber(value))) return "is not a number";
  if (operator.startsWith("DATE_") && Number.isNaN(parseIsoDate(value))) return "is not an ISO 8601 date";
  if (operator.startsWith("SEMVER_") && !parseSemver(value, true)) return "is not a semantic version (1.2.3)";
  if (operator === "REGEX") {
    try {
      regexOf(value, constraint.caseInsensitive === true);
    } catch (error) {
      return (error as RuleError).message;
    }
  }
  return undefined;
}

function validateVariants(variants: readonly Variant[], path: string, type: ValueType, errors: Errors): void {
  if (variants.length === 0) return;
  const names = new Set<string>();
  let weightsValid = true;
  for (const [i, variant] of variants.entries()) {
    const field = `${path}[${i}]`;
    if (typeof variant.name !== "string" || variant.name === "")
      errors.push({ field: `${field}.name`, message: "is required" });
    else if (names.has(variant.name)) errors.push({ field: `${field}.name`, message: "is used by another variant" });
    names.add(variant.name);
    if (!Number.isInteger(variant.weight) || variant.weight < 0) {
      weightsValid = false;
      errors.push({ field: `${field}.weight`, message: "must be a whole number of at least 0" });
    }
    if (variant.weightType !== undefined && variant.weightType !== "variable" && variant.weightType !== "fix") {
      errors.push({ field: `${field}.weightType`, message: 'must be "variable" or "fix"' });
    }
    const problem = variant.payload && payloadProblem(variant.payload.type, variant.payload.value, type);
    if (problem) errors.push({ field: `${field}.payload.${problem[0]}`, message: problem[1] });
  }
  if (!weightsValid) return;
  const fixed = variants.filter((variant) => variant.weightType === "fix");
  const fixedTotal = fixed.reduce((sum, variant) => sum + variant.weight, 0);
  if (!variants.some((variant) => variant.weight > 0)) {
    errors.push({ field: path, message: "need a weight above 0 on at least one variant" });
  } else if (fixedTotal > WEIGHT_TOTAL) {
    errors.push({ field: path, message: `have fixed weights adding up to ${fixedTotal}, more than ${WEIGHT_TOTAL}` });
  } else if (fixed.length > 0 && fixed.length === variants.length && fixedTotal !== WEIGHT_TOTAL) {
    errors.push({
      field: path,
      message: `have only fixed weights, adding up to ${fixedTotal}; they must add up to ${WEIGHT_TOTAL}`,
    });
  }
}

/** What is wrong with a payload, as [field, message]: its type, or a value not of that type (or the flag's). */
function payloadProblem(payloadType: string, value: string, flagType: ValueType): [string, string] | undefined {
  if (!PAYLOAD_TYPES.has(payloadType)) return ["type", `must be one of ${[...PAYLOAD_TYPES].join(", ")}`];
  if (typeof value !== "string") return ["value", "must be a string"];
  if ((payloadType === "number" || flagType === "number") && Number.isNaN(parseNumber(value))) {
    return ["value", payloadType === "number" ? "is not a number" : "must be a number (the flag's type)"];
  }
  if (payloadType === "json") {
    try {
      JSON.parse(value);
    } catch {
      return ["value", "is not valid JSON"];
    }
  }
  return undefined;
}

function validateDependencies(flag: FlagInput, scope: ValidationScope, errors: Errors): void {
  const own = flag.dependencies.map((dependency) => dependency.feature);
  const dependenciesOf = (key: string) => (key === flag.key ? own : (scope.dependenciesOf(key) ?? []));
  for (const [i, dependency] of flag.dependencies.entries()) {
    const field = `dependencies[${i}].feature`;
    if (dependency.feature === flag.key) {
      errors.push({ field, message: "must not be the flag itself" });
      continue;
    }
    const cycle = pathBack(dependency.feature, flag.key, dependenciesOf);
    if (cycle) errors.push({ field, message: `forms a dependency cycle: ${[flag.key, ...cycle].join(" → ")}` });
  }
}

/** A dependency path from `start` back to `target` (both included), if there is one. */
function pathBack(start: string, target: string, next: (key: string) => readonly string[]): string[] | undefined {
  const seen = new Set<string>();
  const walk = (key: string): string[] | undefined => {
    if (key === target) return [key];
    if (seen.has(key)) return undefined;
    seen.add(key);
    for (const parent of next(key)) {
      const rest = walk(parent);
      if (rest) return [key, ...rest];
    }
    return undefined;
  };
  return walk(start);
}
