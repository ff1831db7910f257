// Flags on the request path: the rule set, the caller's context, exposures, and the requireFlag gate.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { notFound } from "../middleware/errors.ts";
import { evaluate, type RuleSet } from "./evaluate.ts";
import { recordExposures } from "./exposures.ts";
import type { Evaluation, EvaluationContext } from "./model.ts";
import { snapshotSources } from "./publish.ts";
import { currentRuleSet } from "./snapshot-cache.ts";

/** The current compiled rule set (isolate memory, KV, or Postgres when KV is empty; never per evaluation). */
export const ruleSetFor = (c: Context<AppEnv>): Promise<RuleSet> =>
  currentRuleSet(snapshotSources(c.env, c.var.config, c.executionCtx));

/**
 * The context to evaluate for a caller. A signed-in caller is always evaluated as itself: the user id comes from
 * its token, so no context can claim another user's overrides. Unset fields get the request's values.
 */
export function contextFor(c: Context<AppEnv>, given: EvaluationContext = {}): EvaluationContext {
  const userId = c.var.principal?.userId;
  return {
    ...given,
    ...(userId ? { userId } : {}),
    environment: given.environment ?? c.var.config.ENVIRONMENT,
    remoteAddress: given.remoteAddress ?? c.req.header("cf-connecting-ip"),
    currentTime: given.currentTime ?? new Date().toISOString(),
  };
}

/** Records exposures for evaluations served to a caller (sampled; never delays the response). */
export function exposed(c: Context<AppEnv>, context: EvaluationContext, evaluations: Iterable<[string, Evaluation]>) {
  recordExposures(c.env, c.var.config, c.executionCtx, context.userId, evaluations);
}

/**
 * Gates a route on a flag: 404 (as if the route did not exist) unless the flag is on for this caller. Put it
 * after the auth middleware when per-user targeting or overrides should apply.
 */
export const requireFlag = (key: string) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const context = contextFor(c);
    const evaluation = evaluate(await ruleSetFor(c), key, context);
    exposed(c, context, [[key, evaluation]]);
    if (!evaluation.enabled) return notFound(c);
    await next();
  });
