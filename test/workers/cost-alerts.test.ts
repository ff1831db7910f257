import { env, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env.ts";
import type { MetricEvent } from "../../src/metrics/catalog.ts";
import { metricsAggregator } from "../../src/metrics/record.ts";
import { costAlertIds, costConditions } from "../../src/ops/budgets.ts";
import { alertManager, evaluateSlos } from "../../src/ops/jobs.ts";
import { dayOf, KEPT_DAYS, SpendLedger } from "../../src/ops/spend.ts";
import type { MetricsAggregator } from "../../workers/metrics-aggregator.ts";
import { call, OPERATOR_TOKEN, received } from "./harness.ts";
import { signedInUser, type TestUser } from "./identity-helpers.ts";

// Cost budgets end to end: model cost events counted per UTC day by the real MetricsAggregator, the real
// AlertManager turning the budgets of vitest.config.ts (COST_BUDGET_DAILY_USD 10, COST_BUDGET_MONTHLY_USD 100)
// and the anomaly check into alerts, and PagerDuty and the webhook played by the request receiver. The days
// are synthetic, a year ahead, so only the spend injected here is read.

const workerEnv = env as unknown as Env;
const DAY = 86_400_000;
const MINUTE = 60_000;
// Noon of a 15th, a year ahead: far from month ends and from the SLO suite's synthetic days.
const ahead = new Date(Date.now() + 365 * DAY);
const base = Date.UTC(ahead.getUTCFullYear(), ahead.getUTCMonth(), 15, 12);

const cost = (usd: number, feature = "answers", model = "gpt-4o-mini"): MetricEvent => ({
  name: "llm_cost_usd_total",
  labels: { feature, model },
  value: usd,
});

async function spend(atMs: number, events: MetricEvent[]) {
  await runInDurableObject(metricsAggregator(workerEnv), (_: MetricsAggregator, state) => {
    state.storage.transactionSync(() => new SpendLedger(state.storage.sql).count(events, atMs));
  });
}

const evaluateAt = (ms: number) =>
  evaluateSlos(workerEnv, { scheduledTime: ms, cron: "* * * * *", noRetry() {} } as ScheduledController);

async function costNotifications() {
  return (await received())
    .filter((r) => r.path === "/pagerduty/v2/enqueue" || r.path === "/alerts/webhook")
    .map((r) => ({ path: r.path, body: JSON.parse(r.body) }))
    .filter((s) => String(s.body.dedup_key ?? s.body.alert?.dedupKey ?? "").startsWith("voiceassist/cost-"));
}

const openCostAlerts = async (token: string) =>
  (await call("GET", "/api/admin/alerts", { token })).body.items.filter(
    (a: Record<string, unknown>) => String(a.slo).startsWith("cost-") && a.resolved_at === null,
  );

let admin: TestUser;
let viewer: TestUser;

beforeAll(async () => {
  admin = await signedInUser("admin");
  viewer = await signedInUser("viewer");
});

describe("cost conditions (pure)", () => {
  const today = dayOf(base);
  const days = (entries: [number, number][]) => new Map(entries.map(([offset, usd]) => [today + offset, usd]));
  const holding = (spent: Map<number, number>, budgets = { daily: 10, monthly: 100 }) =>
    costConditions(spent, budgets, base)
      .filter((c) => c.holds)
      .map((c) => `${c.id}/${c.severity}`);

  it("raises tickets at 50 and 80 % of a budget and a page at 100 %, for the day and the calendar month", () => {
    expect(holding(days([[0, 4.99]]))).toEqual([]);
    expect(holding(days([[0, 5]]))).toEqual(["cost-budget-daily-50/ticket"]);
    expect(holding(days([[0, 10]]))).toEqual([
      "cost-budget-daily-50/ticket",
      "cost-budget-daily-80/ticket",
      "cost-budget-daily-100/page",
    ]);
    // The month counts from the 1st (UTC): the 14 days before the 15th, and not the month before.
    const month = days([
      [-14, 40],
      [-1, 40],
      [-15, 500],
    ]);
    expect(holding(month)).toEqual(["cost-budget-monthly-50/ticket", "cost-budget-monthly-80/ticket"]);
    expect(holding(days([[0, 1000]]), {} as { daily: number; monthly: number })).toEqual([]);
  });

  it("flags a day above 3x the median of the 7 days before it, never against a median of 0", () => {
    const week = (usd: number[]) => usd.map((v, i): [number, number] => [-(i + 1), v]);
    // Median of [1, 1, 1, 2, 2, 9, 0] is 1: the outlier day does not move it.
    expect(holding(days([...week([1, 1, 1, 2, 2, 9, 0]), [0, 3]]))).toEqual([]);
    expect(holding(days([...week([1, 1, 1, 2, 2, 9, 0]), [0, 3.01]]))).toEqual(["cost-anomaly/ticket"]);
    expect(holding(days([...week([0, 0, 0, 0, 5, 5, 5]), [0, 4]]))).toEqual([]);
    expect(holding(days([[0, 4]]))).toEqual([]);
  });
});

describe("the spend ledger", () => {
  it("adds model cost per UTC day whatever the feature, ignores other events, and keeps 40 days", async () => {
    const stub = workerEnv.METRICS.get(workerEnv.METRICS.idFromName(`spend-${crypto.randomUUID()}`));
    const daily = await runInDurableObject(stub, (_: MetricsAggregator, state) => {
      const ledger = new SpendLedger(state.storage.sql);
      ledger.count([cost(0.25), cost(0.5, "embeddings", "text-embedding-3-small"), cost(0.25, "voice")], base);
      ledger.count(
        [
          cost(1),
          {
            name: "llm_tokens_total",
            labels: { feature: "answers", model: "gpt-4o-mini", kind: "prompt" },
            value: 900,
          },
        ],
        base - DAY,
      );
      ledger.count([cost(7)], base - KEPT_DAYS * DAY);
      const spent = ledger.daily(base);
      const rows = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM spend_days").one().n;
      return { spent, rows };
    });
    expect(daily.spent).toEqual(
      new Map([
        [dayOf(base), 1],
        [dayOf(base) - 1, 1],
      ]),
    );
    expect(daily.rows).toBe(4);
  });
});

describe("budget alerts through the alert path", () => {
  it("tickets at 50 and 80 %, pages at 100 %, sets the budget gauges, and resolves everything the next day", async () => {
    const before = (await costNotifications()).length;
    const t = base;
    await spend(t - MINUTE, [cost(4)]);
    await evaluateAt(t);
    expect(await openCostAlerts(viewer.access)).toEqual([]);

    await spend(t, [cost(1.5, "embeddings", "text-embedding-3-small")]);
    await evaluateAt(t + MINUTE);
    expect((await openCostAlerts(viewer.access)).map((a: Record<string, unknown>) => a.slo)).toEqual([
      "cost-budget-daily-50",
    ]);

    await spend(t + MINUTE, [cost(4.5, "voice", "gpt-realtime")]);
    await evaluateAt(t + 2 * MINUTE);
    const open = await openCostAlerts(viewer.access);
    expect(open.map((a: Record<string, unknown>) => `${a.slo}/${a.severity}`).sort()).toEqual([
      "cost-budget-daily-100/page",
      "cost-budget-daily-50/ticket",
      "cost-budget-daily-80/ticket",
    ]);
    const page = open.find((a: Record<string, unknown>) => a.slo === "cost-budget-daily-100");
    expect(page).toMatchObject({
      state: "notified",
      dedup_key: "voiceassist/cost-budget-daily-100/page",
      facts: { period: "daily", threshold_percent: 100, spent_usd: 10, budget_usd: 10 },
    });

    const metrics = await call("GET", "/metrics", { token: OPERATOR_TOKEN });
    expect(metrics.body).toContain('voiceassist_cost_budget_spent_ratio{period="day"} 1\n');
    expect(metrics.body).toContain('voiceassist_cost_budget_spent_ratio{period="month"} 0.1\n');

    const delivered = (await costNotifications()).slice(before);
    const pages = delivered.filter((s) => s.path === "/pagerduty/v2/enqueue");
    expect(pages.map((s) => [s.body.dedup_key, s.body.event_action])).toEqual([
      ["voiceassist/cost-budget-daily-100/page", "trigger"],
    ]);
    expect(pages[0]?.body.payload).toMatchObject({
      severity: "critical",
      summary: "Page: Model spend today (UTC) reached 100 % of the daily budget: $10.00 of $10.00",
      custom_details: {
        slo: "cost-budget-daily-100",
        runbook_url: "docs/runbooks/slos.md#cost-budgets",
        facts: { spent_usd: 10, budget_usd: 10 },
      },
    });
    const tickets = delivered.filter((s) => s.path === "/alerts/webhook");
    expect(tickets.map((s) => [s.body.type, s.body.alert.slo])).toEqual([
      ["alert.fired", "cost-budget-daily-50"],
      ["alert.fired", "cost-budget-daily-80"],
    ]);

    // A new UTC day: the daily budget starts again and every open cost alert resolves where it was sent.
    const nextDay = dayOf(t) * DAY + DAY + MINUTE;
    await evaluateAt(nextDay);
    expect(await openCostAlerts(viewer.access)).toEqual([]);
    const resolves = (await costNotifications()).slice(before + delivered.length);
    expect(resolves.map((s) => s.body.event_action ?? s.body.type).sort()).toEqual([
      "alert.resolved",
      "alert.resolved",
      "resolve",
    ]);
  });

  it("raises a ticket when a day costs more than 3x the median of the week before", async () => {
    const t = base + 20 * DAY;
    for (let i = 1; i <= 7; i++) await spend(t - i * DAY, [cost(1)]);
    await spend(t - MINUTE, [cost(3.5)]);
    await evaluateAt(t);
    const [anomaly, ...others] = await openCostAlerts(viewer.access);
    expect(others).toEqual([]);
    expect(anomaly).toMatchObject({
      slo: "cost-anomaly",
      severity: "ticket",
      facts: { spent_usd: 3.5, median_usd: 1, factor: 3 },
    });
    await evaluateAt(dayOf(t) * DAY + DAY + MINUTE);
    expect(await openCostAlerts(viewer.access)).toEqual([]);
  });

  it("lets an admin silence one cost alert by its id, and refuses an unknown one", async () => {
    const until = new Date(Date.now() + 3_600_000).toISOString();
    expect(costAlertIds).toContain("cost-anomaly");
    const ok = await call("POST", "/api/admin/alerts/silences", {
      token: admin.access,
      json: { slo: "cost-anomaly", until, reason: "known batch re-embedding" },
    });
    expect(ok.status).toBe(201);
    expect(ok.body.slo).toBe("cost-anomaly");
    expect((await call("DELETE", `/api/admin/alerts/silences/${ok.body.id}`, { token: admin.access })).status).toBe(
      204,
    );
    const unknown = await call("POST", "/api/admin/alerts/silences", {
      token: admin.access,
      json: { slo: "cost-budget-weekly-50", until, reason: "x" },
    });
    expect(unknown.status).toBe(422);
  });

  it("reports nothing spent on a day and month without cost events", async () => {
    const summary = await alertManager(workerEnv).evaluate(base + 80 * DAY);
    expect(summary.budgetSpent).toEqual({ day: 0, month: 0 });
  });
});
