import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env.ts";
import { loadConfig } from "../src/env.ts";
import { metricsAggregator } from "../src/metrics/record.ts";
import { type Alert, AlertBook, type AlertEvent, type AlertState, type Silence } from "../src/ops/alerts.ts";
import { costConditions, spentRatios } from "../src/ops/budgets.ts";
import { WINDOW_MINUTES } from "../src/ops/burn-rate.ts";
import { type DeliveryReport, deliverDue, sendWith } from "../src/ops/deliver.ts";
import { acknowledge, evaluateMinute, type Routing, readSlos, type SloReading } from "../src/ops/evaluate.ts";
import { PERIOD_MINUTES } from "../src/ops/ledger.ts";
import { withObjectives } from "../src/ops/slos.ts";

/** The status also reads the SLO period (for the budget left); evaluation reads the burn-rate windows only. */
const STATUS_WINDOWS = [...WINDOW_MINUTES, PERIOD_MINUTES];

export interface EvaluationSummary {
  skipped: boolean;
  open: number;
  deliveries: DeliveryReport;
  /** Spend over budget per configured period, for the cost_budget_spent_ratio gauge. */
  budgetSpent: { day?: number; month?: number };
}

/**
 * The SLO evaluator and alert manager (one object, named "global"): each minute it reads the SLO windows and
 * the daily model spend from the metrics aggregator, moves alerts along firing → notified → acknowledged →
 * resolved, escalates unanswered pages and sends what is owed to PagerDuty and the webhook. Its state is its
 * own storage, never Postgres or Redis, so it pages while they are down.
 */
export class AlertManager extends DurableObject<Env> {
  private readonly book: AlertBook;
  private evaluating = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.book = new AlertBook(ctx.storage.sql);
  }

  /** One evaluation minute; a second call while one runs (overlapping crons) does nothing. */
  async evaluate(nowMs: number): Promise<EvaluationSummary> {
    const config = this.config();
    if (this.evaluating) {
      return { skipped: true, open: this.book.open().length, deliveries: emptyReport, budgetSpent: {} };
    }
    this.evaluating = true;
    try {
      const readings = await this.read(nowMs, WINDOW_MINUTES);
      const spend = await metricsAggregator(this.env).dailySpend(nowMs);
      const budgets = { daily: config.COST_BUDGET_DAILY_USD, monthly: config.COST_BUDGET_MONTHLY_USD };
      const routing: Routing = {
        pagerDutyLevels: [config.PAGERDUTY_ROUTING_KEY, ...config.ALERT_ESCALATION_ROUTING_KEYS].filter(Boolean).length,
        webhook: Boolean(config.ALERT_WEBHOOK_URL),
        escalateAfterMs: config.ALERT_ESCALATE_AFTER_MINUTES * 60_000,
      };
      const conditions = costConditions(spend, budgets, nowMs);
      this.ctx.storage.transactionSync(() => evaluateMinute(this.book, readings, routing, nowMs, conditions));
      const deliveries = await deliverDue(this.book, sendWith(config), nowMs);
      return {
        skipped: false,
        open: this.book.open().length,
        deliveries,
        budgetSpent: spentRatios(spend, budgets, nowMs),
      };
    } finally {
      this.evaluating = false;
    }
  }

  /** Every SLO's windows and burn rates now, with its open alerts. */
  async status(nowMs: number): Promise<{ readings: SloReading[]; open: Alert[] }> {
    return { readings: await this.read(nowMs, STATUS_WINDOWS), open: this.book.open() };
  }

  alerts(state?: AlertState): Alert[] {
    return this.book.list(state);
  }

  acknowledge(id: string, by: string, nowMs: number): Alert | undefined {
    return this.ctx.storage.transactionSync(() => acknowledge(this.book, id, by, nowMs));
  }

  addSilence(silence: Silence): void {
    this.book.addSilence(silence);
  }

  silences(nowMs: number): Silence[] {
    return this.book.silences(nowMs);
  }

  deleteSilence(id: string): Silence | undefined {
    return this.book.deleteSilence(id);
  }

  /** Alert events not yet copied to Postgres, oldest first. */
  pendingHistory(limit: number): AlertEvent[] {
    return this.book.pendingHistory(limit);
  }

  historyCopied(ids: string[]): void {
    this.book.historyCopied(ids);
  }

  private async read(nowMs: number, windows: readonly number[]): Promise<SloReading[]> {
    const slos = withObjectives(this.config().SLO_OBJECTIVES);
    return readSlos(slos, await metricsAggregator(this.env).sloWindows(nowMs, windows));
  }

  private config() {
    const loaded = loadConfig(this.env);
    if (!loaded.ok) throw new Error("the alert manager's environment is invalid");
    return loaded.config;
  }
}

const emptyReport: DeliveryReport = { delivered: 0, retrying: 0, rejected: 0 };
