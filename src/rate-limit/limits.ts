import type { LockoutPolicy, LockoutState } from "../../workers/rate-limiter.ts";
import { sha256Hex } from "../auth/crypto.ts";
import type { RateLimitRule } from "../config.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";

export type RateLimitRuleName = "register" | "login" | "refresh";
export type { LockoutPolicy, RateLimitRule };

/** Refuses with 429 RATE_LIMITED (and Retry-After) once `key` has used up `limits` for `rule`. */
export async function enforceRateLimit(
  env: Env,
  rule: RateLimitRuleName,
  key: string,
  limits: RateLimitRule,
): Promise<void> {
  const limiter = await limiterFor(env, rule, key);
  const verdict = await failOpen(() => limiter.hit(limits.limit, limits.windowSeconds));
  if (!verdict || verdict.allowed) return;
  await recordMetrics(env, undefined, { name: "rate_limited_total", labels: { rule }, value: 1 });
  throw tooMany(
    `Too many ${rule} requests: at most ${limits.limit} in ${duration(limits.windowSeconds)}.`,
    verdict.retryAfterSeconds,
  );
}

/** Refuses with 429 RATE_LIMITED while `key` (the account) is locked after repeated failed logins. */
export async function assertNotLockedOut(env: Env, key: string): Promise<void> {
  const limiter = await limiterFor(env, "lockout", key);
  const state = await failOpen(() => limiter.checkLockout());
  if (!state?.locked) return;
  await recordMetrics(env, undefined, { name: "rate_limited_total", labels: { rule: "lockout" }, value: 1 });
  throw tooMany("This account is temporarily locked after repeated failed logins.", state.retryAfterSeconds);
}

/** Counts a failed login; the result says whether it locked the account (undefined if the limiter is down). */
export async function recordLoginFailure(
  env: Env,
  key: string,
  policy: LockoutPolicy,
): Promise<(LockoutState & { failures: number }) | undefined> {
  const limiter = await limiterFor(env, "lockout", key);
  const result = await failOpen(() => limiter.recordFailure(policy));
  if (result?.locked) await recordMetrics(env, undefined, { name: "auth_lockouts_total", labels: {}, value: 1 });
  return result;
}

export async function clearLoginFailures(env: Env, key: string): Promise<void> {
  const limiter = await limiterFor(env, "lockout", key);
  await failOpen(() => limiter.clearFailures());
}

// Hashed so that no email or address is kept in clear as a Durable Object name.
async function limiterFor(env: Env, rule: RateLimitRuleName | "lockout", key: string) {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`${rule}:${await sha256Hex(key)}`));
}

let limiterFailing = false;

// Fail open: a limiter outage must not lock every user out; credentials are still checked.
async function failOpen<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    const result = await call();
    limiterFailing = false;
    return result;
  } catch (error) {
    if (!limiterFailing) log("error", "rate limiter unreachable", { error: describeError(error) });
    limiterFailing = true;
    return undefined;
  }
}

function tooMany(reason: string, retryAfterSeconds: number): ApiError {
  return new ApiError("RATE_LIMITED", `${reason} Retry in ${duration(retryAfterSeconds)}.`, {
    headers: { "Retry-After": String(retryAfterSeconds) },
    extensions: { retryAfterSeconds },
  });
}

/** "1 hour", "2 minutes", "90 seconds": the largest whole unit. */
function duration(seconds: number): string {
  const [n, unit] =
    seconds % 3600 === 0
      ? [seconds / 3600, "hour"]
      : seconds % 60 === 0
        ? [seconds / 60, "minute"]
        : [seconds, "second"];
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}
