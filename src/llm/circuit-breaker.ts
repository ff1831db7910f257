// A circuit breaker per upstream: after N consecutive failures, calls fail fast for a cooldown, then
// one trial call decides whether the circuit closes again. Pure state; the caller says what failed.

type CircuitState = "closed" | "open" | "half-open";
export type CallOutcome = "success" | "failure" | "no-verdict";

interface CircuitOptions {
  /** Consecutive failures that open the circuit. */
  failures: number;
  cooldownMs: number;
  now?: () => number;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | undefined;
  private trialSince: number | undefined;
  private readonly options: Required<CircuitOptions>;

  constructor(options: CircuitOptions) {
    this.options = { now: Date.now, ...options };
  }

  get state(): CircuitState {
    if (this.openedAt === undefined) return "closed";
    return this.options.now() - this.openedAt < this.options.cooldownMs ? "open" : "half-open";
  }

  /**
   * Asks to make a call: undefined when it may go ahead (then record how it ended),
   * else how many ms until the next trial may.
   */
  acquire(): number | undefined {
    const state = this.state;
    const now = this.options.now();
    const { cooldownMs } = this.options;
    if (state === "closed") return undefined;
    if (state === "open") return (this.openedAt as number) + cooldownMs - now;
    // One trial at a time; a trial never recorded (its caller walked away) gives way after a cooldown.
    if (this.trialSince === undefined || now - this.trialSince >= cooldownMs) {
      this.trialSince = now;
      return undefined;
    }
    return this.trialSince + cooldownMs - now;
  }

  /** Reports how an acquired call ended: "no-verdict" when it says nothing of the upstream (cancelled, a 400). */
  record(outcome: CallOutcome): void {
    if (outcome === "success") {
      this.failures = 0;
      this.openedAt = undefined;
    } else if (outcome === "failure") {
      // Only a success resets the count, so a failed trial opens the circuit for another cooldown.
      if (++this.failures >= this.options.failures) this.openedAt = this.options.now();
    }
    this.trialSince = undefined;
  }
}

// Isolate-level: every request served by this isolate shares what it learnt about the upstream.
const breakers = new Map<string, CircuitBreaker>();

/** The breaker of one provider and model, created on first use. */
export function circuitBreakerFor(key: string, options: CircuitOptions): CircuitBreaker {
  let breaker = breakers.get(key);
  if (!breaker) {
    breaker = new CircuitBreaker(options);
    breakers.set(key, breaker);
  }
  return breaker;
}
