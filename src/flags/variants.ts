// Variant selection as in Unleash: an override naming the context wins; otherwise the sticky id (the stickiness
// field, or userId/sessionId/remoteAddress, else random) is hashed into 1..total weight and the variant whose
// cumulative weight reaches it is chosen. Each variant's result and typed value are built once, at compile time.
import { at, reader, type Test } from "./constraints.ts";
import type {
  Evaluation,
  EvaluationContext,
  JsonValue,
  Payload,
  Reason,
  ValueType,
  Variant,
  VariantResult,
} from "./model.ts";
import { murmur3, VARIANT_SEED } from "./murmur.ts";

/** What a flag needs to build its evaluations. */
export interface FlagShape {
  readonly type: ValueType;
  readonly defaultValue: JsonValue;
  readonly version: number;
}

export type MatchReason = "TARGETING_MATCH" | "SPLIT" | "DEFAULT";
export type Outcomes<R extends Reason> = Readonly<Record<R, Evaluation>>;

interface CompiledVariant {
  readonly name: string;
  readonly weight: number;
  /** The evaluation serving this variant, for each reason it can be served with. */
  readonly outcomes: Outcomes<MatchReason>;
}

export interface VariantSet {
  readonly variants: readonly CompiledVariant[];
  readonly total: number;
  /** Whether the choice depends on the hash: two or more variants with a weight above 0. */
  readonly weighted: boolean;
  readonly overrides: readonly { readonly variant: CompiledVariant; readonly matches: Test }[];
  readonly pick: (context: EvaluationContext) => CompiledVariant | undefined;
}

/** Deep-freezes a JSON value: evaluations are shared between callers, so nobody may change one. */
export function frozen<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) frozen(inner);
    Object.freeze(value);
  }
  return value;
}

/** The flag's value from a payload: boolean flags are their enabled state; others read the payload as their type. */
export function payloadValue(type: ValueType, payload: Payload | undefined, fallback: JsonValue): JsonValue {
  if (type === "boolean") return true;
  if (!payload || typeof payload.value !== "string") return fallback;
  if (type === "string") return payload.value;
  const number = payload.value.trim() === "" ? Number.NaN : Number(payload.value);
  if (type === "number") return Number.isFinite(number) ? number : fallback;
  if (payload.type === "json") return frozen(at("payload.value", () => JSON.parse(payload.value) as JsonValue));
  return payload.type === "number" && Number.isFinite(number) ? number : payload.value;
}

/** One shared, frozen evaluation (built at compile time so evaluating allocates nothing). */
export function outcome(
  enabled: boolean,
  variant: VariantResult,
  value: JsonValue,
  reason: Reason,
  version: number,
): Evaluation {
  return Object.freeze({ enabled, variant, value, reason, version });
}

/** The evaluations of an enabled flag serving `variant` with `value`, one per reason. */
export function matchOutcomes(variant: VariantResult, value: JsonValue, version: number): Outcomes<MatchReason> {
  return {
    TARGETING_MATCH: outcome(true, variant, value, "TARGETING_MATCH", version),
    SPLIT: outcome(true, variant, value, "SPLIT", version),
    DEFAULT: outcome(true, variant, value, "DEFAULT", version),
  };
}

export function variantResult(name: string, payload: Payload | undefined): VariantResult {
  return Object.freeze(
    payload ? { name, enabled: true, payload: Object.freeze({ ...payload }) } : { name, enabled: true },
  );
}

const random = (total: number) => Math.floor(Math.random() * total) + 1;

/**
 * Compiles a variant list; undefined when no variant can be chosen (none, or no weight), so the caller falls back
 * (strategy variants to the flag's, the flag's to the disabled variant).
 */
export function compileVariants(
  variants: readonly Variant[] | undefined,
  groupId: string,
  stickiness: string | undefined,
  flag: FlagShape,
): VariantSet | undefined {
  const list: readonly Variant[] = Array.isArray(variants) ? variants : [];
  if (list.length === 0) return undefined;
  const compiled = list.map(
    (variant, i): CompiledVariant => ({
      name: variant.name,
      weight: variant.weight,
      outcomes: matchOutcomes(
        variantResult(variant.name, variant.payload),
        at(`[${i}]`, () => payloadValue(flag.type, variant.payload, flag.defaultValue)),
        flag.version,
      ),
    }),
  );
  const total = compiled.reduce((sum, variant) => sum + variant.weight, 0);
  if (!(total > 0)) return undefined;
  const overrides = list.flatMap((variant, index) =>
    (variant.overrides ?? []).map((override) => {
      const read = reader(override.contextName);
      const values = new Set(override.values);
      const matches = (context: EvaluationContext) => {
        const value = read(context);
        return value !== undefined && values.has(value);
      };
      return { variant: compiled[index]!, matches };
    }),
  );
  const prefix = `${groupId}:`;
  const seedOf = stickyId(stickiness);
  const pick = (context: EvaluationContext) => {
    const id = seedOf(context);
    const target = id === undefined ? random(total) : (murmur3(id, VARIANT_SEED, prefix) % total) + 1;
    let reached = 0;
    for (const variant of compiled) {
      if (variant.weight === 0) continue;
      reached += variant.weight;
      if (reached >= target) return variant;
    }
    return undefined;
  };
  const weighted = compiled.filter((variant) => variant.weight > 0).length > 1;
  return { variants: compiled, total, weighted, overrides, pick };
}

/** The id a variant choice sticks to; undefined means random. */
function stickyId(stickiness: string | undefined): (context: EvaluationContext) => string | undefined {
  if (stickiness === "random") return () => undefined;
  if (stickiness !== undefined && stickiness !== "default") {
    const read = reader(stickiness);
    return (context) => read(context) || undefined;
  }
  return (context) => context.userId || context.sessionId || context.remoteAddress || undefined;
}

/** The variant an override names for this context, if any. */
export function overriddenVariant(set: VariantSet, context: EvaluationContext): CompiledVariant | undefined {
  for (const override of set.overrides) if (override.matches(context)) return override.variant;
  return undefined;
}
