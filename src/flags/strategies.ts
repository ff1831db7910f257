// Unleash's built-in activation strategies, compiled once per strategy: parameters parsed, id lists in sets,
// CIDRs parsed, the hash prefix (`groupId:`) built. A strategy matches when its constraints (its own, then its
// segments') all hold and its activation does.
import { always, at, compileConstraint, never, parseNumber, RuleError, reader, type Test } from "./constraints.ts";
import { contextAddress, type IpRange, inRange, parseIpRange } from "./ip.ts";
import type { EvaluationContext, Strategy } from "./model.ts";
import { murmur3, STRATEGY_SEED } from "./murmur.ts";
import { compileVariants, type FlagShape, type VariantSet } from "./variants.ts";

export interface CompiledStrategy {
  readonly constraints: readonly Test[];
  readonly isEnabled: Test;
  /** Whether a match depended on a percentage hash (a rollout below 100%). */
  readonly split: boolean;
  /** Its own variants, when it has any with weight (else the flag's apply). */
  readonly variants: VariantSet | undefined;
}

export interface StrategyScope {
  readonly flag: FlagShape & { readonly key: string };
  /** Compiled segment constraints by id; a RuleError for a segment that cannot compile. */
  readonly segments: ReadonlyMap<number, readonly Test[] | RuleError>;
  /** This host's name for applicationHostname; undefined at the edge, where that strategy matches nobody. */
  readonly hostname: string | undefined;
}

type Parameters = Readonly<Record<string, string | number | undefined>>;
interface Activation {
  readonly isEnabled: Test;
  readonly split: boolean;
}

export function strategyMatches(strategy: CompiledStrategy, context: EvaluationContext): boolean {
  for (const constraint of strategy.constraints) if (!constraint(context)) return false;
  return strategy.isEnabled(context);
}

/** Compiles one strategy; undefined when it can never match (an unknown strategy or segment, as in Unleash). */
export function compileStrategy(strategy: Strategy, scope: StrategyScope): CompiledStrategy | undefined {
  const parameters: Parameters = strategy.parameters ?? {};
  const activation = at("parameters", () => activationOf(strategy.name, parameters, scope));
  if (!activation) return undefined;
  const constraints = at("constraints", () =>
    (strategy.constraints ?? []).map((constraint, i) => at(`[${i}]`, () => compileConstraint(constraint))),
  );
  for (const [i, id] of (strategy.segments ?? []).entries()) {
    const segment = scope.segments.get(id);
    if (segment === undefined) return undefined;
    if (segment instanceof RuleError) {
      throw new RuleError(`segments[${i}]`, `is segment ${id}, whose ${segment.field} ${segment.message}`);
    }
    constraints.push(...segment);
  }
  const groupId = String(parameters.groupId || scope.flag.key);
  const stickiness = strategy.variants?.[0]?.stickiness || parameters.stickiness;
  const variants = at("variants", () =>
    compileVariants(strategy.variants, groupId, stickiness === undefined ? undefined : String(stickiness), scope.flag),
  );
  return { constraints, isEnabled: activation.isEnabled, split: activation.split, variants };
}

function percentage(parameters: Parameters, name: string): number {
  const value = parameters[name];
  const number = typeof value === "number" ? value : parseNumber(value);
  if (!Number.isFinite(number)) throw new RuleError(name, "must be a number from 0 to 100");
  return number;
}

const list = (value: string | number | undefined) =>
  String(value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");

const bucket = (id: string, prefix: string) => (murmur3(id, STRATEGY_SEED, prefix) % 100) + 1;
const randomBucket = () => Math.floor(Math.random() * 100) + 1;

/** A rollout to `percent`% of the ids `idOf` reads (no id: off), hashed within the group. */
function rollout(
  percent: number,
  groupId: string,
  idOf: (context: EvaluationContext) => string | undefined,
): Activation {
  const prefix = `${groupId}:`;
  return {
    isEnabled: (context) => {
      const id = idOf(context);
      return !!id && percent > 0 && bucket(id, prefix) <= percent;
    },
    split: percent < 100,
  };
}

function activationOf(name: string, parameters: Parameters, scope: StrategyScope): Activation | undefined {
  switch (name) {
    case "default":
      return { isEnabled: always, split: false };
    case "userWithId": {
      const ids = new Set(list(parameters.userIds));
      return { isEnabled: (context) => context.userId !== undefined && ids.has(context.userId), split: false };
    }
    case "gradualRolloutUserId":
      return rollout(percentage(parameters, "percentage"), String(parameters.groupId ?? ""), (c) => c.userId);
    case "gradualRolloutSessionId":
      return rollout(percentage(parameters, "percentage"), String(parameters.groupId ?? ""), (c) => c.sessionId);
    case "gradualRolloutRandom": {
      const percent = percentage(parameters, "percentage");
      return { isEnabled: () => percent >= randomBucket(), split: percent < 100 };
    }
    case "flexibleRollout": {
      const percent = percentage(parameters, "rollout");
      const groupId = String(parameters.groupId || scope.flag.key);
      const stickiness = String(parameters.stickiness || "default");
      if (stickiness === "random")
        return { isEnabled: () => percent > 0 && randomBucket() <= percent, split: percent < 100 };
      if (stickiness !== "default") return rollout(percent, groupId, reader(stickiness));
      const prefix = `${groupId}:`;
      return {
        // Default stickiness: the user, else the session, else chance.
        isEnabled: (context) => {
          const id = context.userId || context.sessionId;
          return percent > 0 && (id ? bucket(id, prefix) : randomBucket()) <= percent;
        },
        split: percent < 100,
      };
    }
    case "remoteAddress": {
      const entries = list(parameters.IPs);
      const exact = new Set(entries);
      const ranges = entries.map(parseIpRange).filter((range): range is IpRange => range !== undefined);
      const isEnabled = (context: EvaluationContext) => {
        const text = context.remoteAddress;
        if (text === undefined) return false;
        if (exact.has(text)) return true;
        const address = contextAddress(text);
        if (address === undefined) return false;
        for (const range of ranges) if (inRange(range, address)) return true;
        return false;
      };
      return { isEnabled, split: false };
    }
    case "applicationHostname": {
      const hostname = scope.hostname?.toLowerCase();
      const matches = hostname !== undefined && list(parameters.hostNames?.toString().toLowerCase()).includes(hostname);
      return { isEnabled: matches ? always : never, split: false };
    }
    default:
      return undefined;
  }
}
