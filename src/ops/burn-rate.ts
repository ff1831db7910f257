// Multi-window, multi-burn-rate alerting (the SRE workbook's table, Sloth's defaults), pure: the evaluator in
// workers/alert-manager.ts feeds it window counts each minute and keeps the state it returns.

export type Severity = "page" | "ticket";

export interface BurnPair {
  id: string;
  severity: Severity;
  longMinutes: number;
  shortMinutes: number;
  /** Fires when both windows burn the error budget faster than this many times the sustainable rate. */
  factor: number;
}

export const BURN_PAIRS: readonly BurnPair[] = [
  { id: "1h-5m", severity: "page", longMinutes: 60, shortMinutes: 5, factor: 14.4 },
  { id: "6h-30m", severity: "page", longMinutes: 360, shortMinutes: 30, factor: 6 },
  { id: "1d-2h", severity: "ticket", longMinutes: 1440, shortMinutes: 120, factor: 3 },
  { id: "3d-6h", severity: "ticket", longMinutes: 4320, shortMinutes: 360, factor: 1 },
];

/** Every window the pairs read, shortest first. */
export const WINDOW_MINUTES: readonly number[] = [
  ...new Set(BURN_PAIRS.flatMap((p) => [p.shortMinutes, p.longMinutes])),
].sort((a, b) => a - b);

export interface Counts {
  good: number;
  valid: number;
}

/** How fast the budget burns: the bad share over the allowed bad share (1 = exactly on budget). */
export const burnRate = (counts: Counts, objective: number): number =>
  counts.valid === 0 ? 0 : (counts.valid - counts.good) / counts.valid / (1 - objective);

/** The error budget left over the period: 1 = untouched, 0 = spent, below 0 = overspent. */
export const budgetRemaining = (period: Counts, objective: number): number => 1 - burnRate(period, objective);

export interface PairReading {
  pair: BurnPair;
  long: number;
  short: number;
}

const burning = (r: PairReading) => r.long > r.pair.factor && r.short > r.pair.factor;

/** One SLO's readings of every pair, from its counts per window (keyed by minutes). */
export const readPairs = (windows: ReadonlyMap<number, Counts>, objective: number): PairReading[] =>
  BURN_PAIRS.map((pair) => ({
    pair,
    long: burnRate(windows.get(pair.longMinutes) ?? { good: 0, valid: 0 }, objective),
    short: burnRate(windows.get(pair.shortMinutes) ?? { good: 0, valid: 0 }, objective),
  }));

/** Where one SLO stands at one severity between evaluations. */
export interface SeverityState {
  /** The pair whose burn fired the open alert, or null when none is open. */
  firedBy: string | null;
  /** Pairs still burning when the last alert resolved: they cannot fire again until their short window cools. */
  disarmed: string[];
}

export const CALM: SeverityState = { firedBy: null, disarmed: [] };

export type Transition = "fired" | "resolved" | null;

/**
 * An alert fires when both windows of an armed pair burn faster than its factor, and resolves when the pair
 * that fired it stops doing so (its short window cools first). Pairs of the same severity that still burn at
 * that moment are disarmed until their own short window falls below their factor, so one incident pages once
 * and a full outage resolves on the 5-minute window, not the 30-minute one.
 */
export function step(
  state: SeverityState,
  severity: Severity,
  readings: readonly PairReading[],
): { state: SeverityState; transition: Transition } {
  const mine = readings.filter((r) => r.pair.severity === severity);
  const disarmed = state.disarmed.filter((id) => {
    const reading = mine.find((r) => r.pair.id === id);
    return reading !== undefined && reading.short > reading.pair.factor;
  });
  if (state.firedBy !== null) {
    const trigger = mine.find((r) => r.pair.id === state.firedBy);
    if (trigger && burning(trigger)) return { state: { firedBy: state.firedBy, disarmed }, transition: null };
    const stillBurning = mine.filter((r) => burning(r) && !disarmed.includes(r.pair.id)).map((r) => r.pair.id);
    return { state: { firedBy: null, disarmed: [...disarmed, ...stillBurning] }, transition: "resolved" };
  }
  const fire = mine.find((r) => burning(r) && !disarmed.includes(r.pair.id));
  if (fire) return { state: { firedBy: fire.pair.id, disarmed }, transition: "fired" };
  return { state: { firedBy: null, disarmed }, transition: null };
}
