// Cost budgets and the spend anomaly, as alert conditions: pure, read each minute by the alert manager from the
// spend ledger (spend.ts). A condition fires its alert while it holds and resolves it when it stops holding
// (the next UTC day or month, or a budget raised or removed).
import type { Severity } from "./burn-rate.ts";
import { type DailySpend, dayOf } from "./spend.ts";

export interface CostBudgets {
  /** COST_BUDGET_DAILY_USD */
  daily?: number;
  /** COST_BUDGET_MONTHLY_USD */
  monthly?: number;
}

export interface Condition {
  /** The alert's subject, in the place of an SLO id: one alert per id and severity. */
  id: string;
  severity: Severity;
  holds: boolean;
  summary: string;
  facts: Record<string, number | string>;
}

/** Shares of a budget that raise an alert: the last one pages, the others raise tickets. */
export const BUDGET_THRESHOLDS = [50, 80, 100] as const;
const PERIODS = ["daily", "monthly"] as const;
/** A day's spend above this many times the median of the days before it is an anomaly. */
export const ANOMALY_FACTOR = 3;
export const ANOMALY_TRAILING_DAYS = 7;

const budgetId = (period: string, threshold: number) => `cost-budget-${period}-${threshold}`;
export const ANOMALY_ID = "cost-anomaly";

/** Every alert subject a condition can raise, beside the SLO ids. */
export const costAlertIds: readonly string[] = [
  ...PERIODS.flatMap((period) => BUDGET_THRESHOLDS.map((threshold) => budgetId(period, threshold))),
  ANOMALY_ID,
];

/** Heading of docs/runbooks/slos.md for a cost alert subject. */
export const costRunbook = (id: string): string | undefined =>
  id === ANOMALY_ID ? "cost-anomaly" : costAlertIds.includes(id) ? "cost-budgets" : undefined;

const spentOn = (spend: DailySpend, day: number) => spend.get(day) ?? 0;

const sumDays = (spend: DailySpend, from: number, to: number) => {
  let total = 0;
  for (let day = from; day <= to; day++) total += spentOn(spend, day);
  return total;
};

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

const usd = (value: number) => `$${value.toFixed(2)}`;
const round = (value: number) => Math.round(value * 1e6) / 1e6;

/** Spend so far today and this calendar month (UTC). */
export function spendNow(spend: DailySpend, nowMs: number): { day: number; month: number } {
  const today = dayOf(nowMs);
  const now = new Date(nowMs);
  const monthStart = dayOf(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  return { day: spentOn(spend, today), month: sumDays(spend, monthStart, today) };
}

/** Spend over budget per configured period (1 = the whole budget spent). */
export function spentRatios(spend: DailySpend, budgets: CostBudgets, nowMs: number): { day?: number; month?: number } {
  const spent = spendNow(spend, nowMs);
  return {
    ...(budgets.daily ? { day: spent.day / budgets.daily } : {}),
    ...(budgets.monthly ? { month: spent.month / budgets.monthly } : {}),
  };
}

/**
 * Every cost condition now. An unset budget's conditions never hold (so its open alerts resolve). The anomaly
 * needs a median above 0 over the 7 days before today: with no paid spend then, any spend would be "3x".
 */
export function costConditions(spend: DailySpend, budgets: CostBudgets, nowMs: number): Condition[] {
  const spent = spendNow(spend, nowMs);
  const conditions: Condition[] = [];
  for (const period of PERIODS) {
    const budget = period === "daily" ? budgets.daily : budgets.monthly;
    const amount = period === "daily" ? spent.day : spent.month;
    const span = period === "daily" ? "today" : "this month";
    for (const threshold of BUDGET_THRESHOLDS) {
      conditions.push({
        id: budgetId(period, threshold),
        severity: threshold === 100 ? "page" : "ticket",
        holds: budget !== undefined && amount >= (budget * threshold) / 100,
        summary: `Model spend ${span} (UTC) reached ${threshold} % of the ${period} budget: ${usd(amount)} of ${usd(budget ?? 0)}`,
        facts: { period, threshold_percent: threshold, spent_usd: round(amount), budget_usd: budget ?? 0 },
      });
    }
  }
  const today = dayOf(nowMs);
  const trailing = Array.from({ length: ANOMALY_TRAILING_DAYS }, (_, i) => spentOn(spend, today - 1 - i));
  const typical = median(trailing);
  conditions.push({
    id: ANOMALY_ID,
    severity: "ticket",
    holds: typical > 0 && spent.day > ANOMALY_FACTOR * typical,
    summary: `Model spend today (UTC), ${usd(spent.day)}, is above ${ANOMALY_FACTOR}x the median day of the last ${ANOMALY_TRAILING_DAYS} (${usd(typical)})`,
    facts: { spent_usd: round(spent.day), median_usd: round(typical), factor: ANOMALY_FACTOR },
  });
  return conditions;
}
