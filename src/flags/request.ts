// Flags on the request path: the rule set, the caller's context, exposures, and the requireFlag gate.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { API_KEY_PREFIX } from "../auth/authenticate.ts";
import { accessTokenCheck, verifyAccessToken } from "../auth/jwt.ts";
import type { Principal } from "../auth/principal.ts";
import { ApiError } from "../errors.ts";
import { recordMetrics } from "../metrics/record.ts";
import { headerCredential, signIn } from "../middleware/auth.ts";
import { notFound } from "../middleware/errors.ts";
import { setRequestUser } from "../middleware/request-context.ts";
import { log } from "../observability/log.ts";
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

/**
 * Counts the flags one request evaluated, as one event whatever their number (the request path stays cheap):
 * `flags` is a length the caller already has.
 */
export function evaluated(c: Context<AppEnv>, via: "evaluate" | "ofrep", flags: number): void {
  if (flags > 0)
    void recordMetrics(c.env, c.executionCtx, { name: "flag_evaluations_total", labels: { via }, value: flags });
}

/** Records exposures for evaluations served to a caller (sampled; never delays the response). */
export function exposed(c: Context<AppEnv>, context: EvaluationContext, evaluations: Iterable<[string, Evaluation]>) {
  recordExposures(c.env, c.var.config, c.executionCtx, context.userId, evaluations);
}

// A caller signed in through the database is trusted this long by the flag routes (never past its token's
// expiry), so steady-state evaluation needs no database. A logout, deactivation, role change or revoked key made
// in this isolate forgets its callers at once (forgetFlagCallersOf); made in another one, it reaches them this late.
const FLAG_CALLER_CACHE_MS = 30_000;
const MAX_CALLERS = 10_000;
const callers = new Map<string, { principal: Principal; until: number }>();
// Bumped by every forgetFlagCallersOf: a sign-in that overlapped one is not remembered (it may predate the change).
let forgotten = 0;

/**
 * requireUser for the flag evaluation routes. The principal is remembered per credential for
 * FLAG_CALLER_CACHE_MS; when the database cannot be reached, a valid access token alone is accepted, so
 * evaluation degrades rather than fails during an outage (API keys still need the database).
 */
export const flagCaller = createMiddleware<AppEnv>(async (c, next) => {
  const credential = c.req.header("x-api-key") ?? c.req.header("authorization") ?? "";
  const now = Date.now();
  const cached = credential ? callers.get(credential) : undefined;
  let principal = cached && cached.until > now ? cached.principal : undefined;
  if (!principal) {
    const before = forgotten;
    principal = await admitFlagCaller(c);
    if (callers.size >= MAX_CALLERS) callers.delete(callers.keys().next().value as string);
    const until = Math.min(now + FLAG_CALLER_CACHE_MS, (principal.tokenExpiresAt ?? Number.POSITIVE_INFINITY) * 1000);
    if (forgotten === before) callers.set(credential, { principal, until });
  }
  c.set("principal", principal);
  setRequestUser(c, principal.userId);
  await next();
});

/**
 * The caller as the flag routes admit it now, never from memory: signed in through the database, or on its
 * access token alone when the database does not answer. Throws the refusal (an ApiError) otherwise.
 */
export async function admitFlagCaller(c: Context<AppEnv>): Promise<Principal> {
  try {
    return await signIn(c);
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) throw error;
    return tokenOnly(c, error);
  }
}

/** Whose access just ended or changed: a user (every credential of theirs), one session, or one API key. */
interface EndedAccess {
  userId?: string;
  sessionId?: string;
  apiKeyId?: string;
}

/**
 * Forgets the remembered flag callers of a user, session or API key in this isolate, so the change applies to
 * the flag routes at once. Call it after the change is committed (logout, session or key revoked, password
 * changed or reset, user deactivated, deleted or given another role).
 */
export function forgetFlagCallersOf(ended: EndedAccess): void {
  forgotten++;
  for (const [credential, { principal }] of callers) {
    const matches =
      (ended.userId !== undefined && principal.userId === ended.userId) ||
      (ended.sessionId !== undefined && principal.sessionId === ended.sessionId) ||
      (ended.apiKeyId !== undefined && principal.apiKeyId === ended.apiKeyId);
    if (matches) callers.delete(credential);
  }
}

/** The caller from its access token alone (signature, issuer, expiry), for when the database is down. */
async function tokenOnly(c: Context<AppEnv>, databaseError: unknown): Promise<Principal> {
  const unavailable = new ApiError("NOT_READY", "Signing in needs the database, which did not answer; retry.", {
    cause: databaseError,
  });
  const { apiKey, bearer: token } = headerCredential(c);
  if (apiKey || !token || token.startsWith(API_KEY_PREFIX)) throw unavailable;
  const config = c.var.config;
  const claims = await verifyAccessToken(token, accessTokenCheck(config)).catch(() => {
    throw unavailable;
  });
  log("warn", "flag caller accepted on its access token alone: the database did not answer", {
    error: databaseError instanceof Error ? databaseError.message : String(databaseError),
  });
  return {
    userId: claims.sub,
    email: "",
    role: claims.role,
    sessionId: claims.sid,
    tokenId: claims.jti,
    tokenExpiresAt: claims.exp,
  };
}

/** Drops remembered callers (tests). */
export const forgetFlagCallers = () => callers.clear();

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
