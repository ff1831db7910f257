import { createDb } from "../db/client.ts";
import { type Env, loadConfig } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { storeAlertEvents } from "./history.ts";

/** Events copied to Postgres per cron run; more wait for the next minute. */
const HISTORY_BATCH = 500;

/** The one alert manager: alert state is global. */
export const alertManager = (env: Env) => env.ALERTS.get(env.ALERTS.idFromName("global"));

/**
 * Cron, every minute: evaluate the SLOs and cost budgets at the minute the cron fired for, send what is owed
 * and set the budget gauges; then copy alert history to Postgres, which may be down (the evaluation never waits for it).
 */
export async function evaluateSlos(env: Env, controller: ScheduledController): Promise<void> {
  const manager = alertManager(env);
  const summary = await manager.evaluate(controller.scheduledTime);
  const ratios = Object.entries(summary.budgetSpent).map(([period, value]) => ({
    name: "cost_budget_spent_ratio" as const,
    labels: { period },
    value,
  }));
  await recordMetrics(env, undefined, ...ratios);
  if (summary.deliveries.retrying || summary.deliveries.rejected) {
    log("warn", "alert notifications pending", { ...summary.deliveries, open: summary.open });
  }
  const loaded = loadConfig(env);
  if (!loaded.ok) return;
  try {
    const pending = await manager.pendingHistory(HISTORY_BATCH);
    await manager.historyCopied(await storeAlertEvents(createDb(loaded.config), pending));
  } catch (error) {
    log("warn", "alert history not copied to Postgres; kept for the next run", { error: describeError(error) });
  }
}
