import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env.ts";

interface RateLimitVerdict {
  allowed: boolean;
  remaining: number;
  retryAfterSeconds: number;
}

export interface LockoutPolicy {
  /** Consecutive failures before the first lock. */
  threshold: number;
  /** Length of the first lock; each further failure doubles it. */
  baseSeconds: number;
  maxSeconds: number;
}

export interface LockoutState {
  locked: boolean;
  retryAfterSeconds: number;
}

/** Failures are forgotten this long after the last one (and never before a running lock ends). */
export const FAILURE_MEMORY_MS = 24 * 60 * 60 * 1000;

/** Sliding log: the times (ms) of the allowed hits still inside the window, oldest first. */
interface HitLog {
  windowMs: number;
  hits: number[];
}

interface Failures {
  count: number;
  lastAt: number;
  lockedUntil: number;
}

const HITS = "hits";
const FAILURES = "failures";

const wholeSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
const failuresExpireAt = (f: Failures) => Math.max(f.lastAt + FAILURE_MEMORY_MS, f.lockedUntil);

/**
 * One object per rule and (hashed) key, so every count is global and strongly consistent. Each
 * method reads and writes storage synchronously before its first await, so concurrent calls cannot
 * interleave. `now` is injectable for tests; callers in the app leave it to the clock.
 */
export class RateLimiter extends DurableObject<Env> {
  async hit(limit: number, windowSeconds: number, now = Date.now()): Promise<RateLimitVerdict> {
    const windowMs = windowSeconds * 1000;
    const hits = (this.ctx.storage.kv.get<HitLog>(HITS)?.hits ?? []).filter((at) => at > now - windowMs);
    if (hits.length >= limit) {
      // The hit whose expiry frees a slot; more than `limit` remain only after the limit was lowered.
      const freeing = hits[hits.length - limit] as number;
      return { allowed: false, remaining: 0, retryAfterSeconds: wholeSeconds(freeing + windowMs - now) };
    }
    hits.push(now);
    this.ctx.storage.kv.put<HitLog>(HITS, { windowMs, hits });
    await this.scheduleCleanup(now + windowMs);
    return { allowed: true, remaining: limit - hits.length, retryAfterSeconds: 0 };
  }

  checkLockout(now = Date.now()): LockoutState {
    const lockedUntil = this.ctx.storage.kv.get<Failures>(FAILURES)?.lockedUntil ?? 0;
    return lockedUntil > now
      ? { locked: true, retryAfterSeconds: wholeSeconds(lockedUntil - now) }
      : { locked: false, retryAfterSeconds: 0 };
  }

  /** Counts a failure; from `threshold` on, each one locks for base * 2^(failures - threshold), capped. */
  async recordFailure(policy: LockoutPolicy, now = Date.now()): Promise<LockoutState & { failures: number }> {
    const previous = this.ctx.storage.kv.get<Failures>(FAILURES);
    const count = previous && failuresExpireAt(previous) > now ? previous.count + 1 : 1;
    const lockSeconds =
      count >= policy.threshold ? Math.min(policy.baseSeconds * 2 ** (count - policy.threshold), policy.maxSeconds) : 0;
    const failures: Failures = { count, lastAt: now, lockedUntil: lockSeconds ? now + lockSeconds * 1000 : 0 };
    this.ctx.storage.kv.put(FAILURES, failures);
    await this.scheduleCleanup(failuresExpireAt(failures));
    return { locked: lockSeconds > 0, retryAfterSeconds: lockSeconds, failures: count };
  }

  clearFailures(): void {
    // Reading first: a successful login for a clean account should not create storage.
    if (this.ctx.storage.kv.get(FAILURES) !== undefined) this.ctx.storage.kv.delete(FAILURES);
  }

  /** Once every hit and failure has expired, deletes all storage so an idle key costs nothing. */
  override async alarm(): Promise<void> {
    const log = this.ctx.storage.kv.get<HitLog>(HITS);
    const failures = this.ctx.storage.kv.get<Failures>(FAILURES);
    const lastHit = log?.hits.at(-1);
    const until = Math.max(
      log && lastHit !== undefined ? lastHit + log.windowMs : 0,
      failures ? failuresExpireAt(failures) : 0,
    );
    if (until > Date.now()) await this.ctx.storage.setAlarm(until);
    else await this.ctx.storage.deleteAll();
  }

  // One pending alarm is enough: when it fires early, it reschedules for what is still live.
  private async scheduleCleanup(at: number): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(at);
  }
}
