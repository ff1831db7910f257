// Constraints, compiled once into predicates over the evaluation context, with Unleash's semantics: values are
// trimmed, a missing context field fails every operator (NOT_IN aside), `inverted` negates a known operator.
// Malformed operands (a regex, semver, number or date that does not parse) make the rule uncompilable.
import { contextAddress, type IpRange, inRange, parseIpRange } from "./ip.ts";
import { type Constraint, type EvaluationContext, OPERATORS } from "./model.ts";
import { compileRe2 } from "./regex.ts";

export type Test = (context: EvaluationContext) => boolean;
export const always: Test = () => true;
export const never: Test = () => false;

/** Unleash operators beyond the model's list, which Unleash SDKs evaluate and the specification exercises. */
export const SUPPORTED_OPERATORS: ReadonlySet<string> = new Set([...OPERATORS, "SEMVER_GTE", "SEMVER_LTE", "IN_CIDR"]);
export const LIST_OPERATORS: ReadonlySet<string> = new Set([
  "IN",
  "NOT_IN",
  "STR_CONTAINS",
  "STR_STARTS_WITH",
  "STR_ENDS_WITH",
  "IN_CIDR",
]);

/** A rule that cannot compile, with the path of the field at fault (named as validate.ts names it). */
export class RuleError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** Runs `build`, prefixing the field path of any failure with `field`. */
export function at<T>(field: string, build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (!(error instanceof RuleError))
      throw new RuleError(field, error instanceof Error ? error.message : String(error));
    const inner = error.field;
    throw new RuleError(
      inner === "" ? field : inner.startsWith("[") ? field + inner : `${field}.${inner}`,
      error.message,
    );
  }
}

const TOP_LEVEL = new Set(["userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime"]);

/** Reads a context field as Unleash does: a top-level field, else a property; anything present as a string. */
export function reader(field: string): (context: EvaluationContext) => string | undefined {
  const topLevel = TOP_LEVEL.has(field);
  return (context) => {
    let value: unknown = topLevel ? context[field as "userId"] : undefined;
    if (value == null) {
      const properties = context.properties;
      value = properties != null && Object.hasOwn(properties, field) ? properties[field] : undefined;
    }
    return value == null ? undefined : typeof value === "string" ? value : String(value);
  };
}

/** The evaluation time in ms: the context's currentTime, else now (NaN for an unreadable time: nothing matches). */
export const timeOf = (context: EvaluationContext) =>
  context.currentTime === undefined ? Date.now() : Date.parse(context.currentTime);

/** A finite number written as text, else NaN. */
export const parseNumber = (text: unknown) =>
  typeof text === "string" && text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : Number.NaN;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?$/;

/** An ISO 8601 date or date-time in ms, else NaN. */
export const parseIsoDate = (text: unknown) =>
  typeof text === "string" && ISO_DATE.test(text) ? Date.parse(text) : Number.NaN;

interface Semver {
  readonly core: readonly [number, number, number];
  readonly prerelease: readonly (string | number)[];
}

const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$/;

/** A semantic version (semver.org); a leading "v" only when `allowV` (Unleash refuses it in the context). */
export function parseSemver(text: string, allowV: boolean): Semver | undefined {
  const trimmed = text.trim();
  const match = SEMVER.exec(allowV ? trimmed.replace(/^[v=]/, "") : trimmed.replace(/^=/, ""));
  if (!match) return undefined;
  const prerelease = match[4] ? match[4].split(".").map((id) => (/^\d+$/.test(id) ? Number(id) : id)) : [];
  return { core: [Number(match[1]), Number(match[2]), Number(match[3])], prerelease };
}

/** Semver precedence: core numbers, then a prerelease sorts before its release, identifiers compared in turn. */
function compareSemver(a: Semver, b: Semver): number {
  for (let i = 0; i < 3; i++) if (a.core[i] !== b.core[i]) return a.core[i]! - b.core[i]!;
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return b.prerelease.length - a.prerelease.length;
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i];
    const y = b.prerelease[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

const cleanValues = (values: unknown): string[] => {
  if (!Array.isArray(values)) throw new RuleError("values", "must be a list of strings");
  return values.filter((value): value is string => typeof value === "string" && value !== "").map((v) => v.trim());
};

function singleValue(constraint: Constraint): string {
  if (typeof constraint.value !== "string") throw new RuleError("value", "is required");
  return constraint.value;
}

/** The RegExp of a REGEX constraint's value; a RuleError naming `value` when RE2 would refuse it. */
export function regexOf(pattern: string, caseInsensitive: boolean): RegExp {
  try {
    return compileRe2(pattern, caseInsensitive);
  } catch (error) {
    throw new RuleError("value", `is not a valid regular expression: ${(error as Error).message}`);
  }
}

const COMPARISONS: Record<string, (order: number) => boolean> = {
  EQ: (order) => order === 0,
  GT: (order) => order > 0,
  GTE: (order) => order >= 0,
  LT: (order) => order < 0,
  LTE: (order) => order <= 0,
};

/** The predicate of one constraint (an unknown operator never matches, inverted or not, as in Unleash). */
export function compileConstraint(constraint: Constraint): Test {
  const operator: string = constraint.operator;
  if (!SUPPORTED_OPERATORS.has(operator)) return never;
  const test = operatorTest(constraint, operator);
  return constraint.inverted === true ? (context) => !test(context) : test;
}

function operatorTest(constraint: Constraint, operator: string): Test {
  const read = reader(constraint.contextName);
  if (operator === "IN" || operator === "NOT_IN") {
    const values = new Set(cleanValues(constraint.values));
    const expected = operator === "IN";
    return (context) => {
      const value = read(context);
      return (value !== undefined && values.has(value)) === expected;
    };
  }
  if (operator.startsWith("STR_")) {
    const fold = constraint.caseInsensitive === true;
    const values = cleanValues(constraint.values).map((v) => (fold ? v.toLowerCase() : v));
    const matches =
      operator === "STR_CONTAINS"
        ? (text: string, value: string) => text.includes(value)
        : operator === "STR_STARTS_WITH"
          ? (text: string, value: string) => text.startsWith(value)
          : (text: string, value: string) => text.endsWith(value);
    return (context) => {
      const value = read(context);
      if (value === undefined) return false;
      const text = fold ? value.toLowerCase() : value;
      for (const candidate of values) if (matches(text, candidate)) return true;
      return false;
    };
  }
  if (operator === "IN_CIDR") {
    const ranges = cleanValues(constraint.values)
      .map(parseIpRange)
      .filter((range): range is IpRange => range !== undefined); // Unleash ignores invalid entries
    return (context) => {
      const value = read(context);
      const address = value === undefined ? undefined : contextAddress(value);
      if (address === undefined) return false;
      for (const range of ranges) if (inRange(range, address)) return true;
      return false;
    };
  }
  if (operator === "REGEX") {
    const regex = regexOf(singleValue(constraint), constraint.caseInsensitive === true);
    return (context) => {
      const value = read(context);
      return value !== undefined && regex.test(value);
    };
  }
  const compare = COMPARISONS[operator.slice(operator.indexOf("_") + 1)]!;
  if (operator.startsWith("NUM_")) {
    const target = parseNumber(singleValue(constraint));
    if (Number.isNaN(target)) throw new RuleError("value", "is not a number");
    return (context) => {
      const value = Number(read(context)); // Unleash's Number(): a missing field is NaN and fails
      return !Number.isNaN(value) && compare(value - target);
    };
  }
  if (operator.startsWith("DATE_")) {
    const target = parseIsoDate(singleValue(constraint));
    if (Number.isNaN(target)) throw new RuleError("value", "is not an ISO 8601 date");
    // Unleash compares currentTime (defaulting to now); any other field is read as a date.
    const time =
      constraint.contextName === "currentTime"
        ? timeOf
        : (context: EvaluationContext) => Date.parse(read(context) ?? "");
    return operator === "DATE_AFTER" ? (context) => time(context) > target : (context) => time(context) < target;
  }
  const target = parseSemver(singleValue(constraint), true);
  if (!target) throw new RuleError("value", "is not a semantic version");
  return (context) => {
    const value = read(context);
    const version = value === undefined ? undefined : parseSemver(value, false);
    return version !== undefined && compare(compareSemver(version, target));
  };
}
