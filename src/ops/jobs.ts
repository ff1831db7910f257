import { createDb } from "../db/client.ts";
import { type Env, loadConfig } from "../env.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { storeAlertEvents } from "./history.ts";

/** Events copied to Postgres per cron run; more wait for the next minute. */
const HISTORY_BATCH = 500;

/** The one alert manager: alert state is global. */
export const alertManager = (env: Env) => env.ALERTS.get(env.ALERTS.idFromName("global"));

/**
 * Cron, every minute: evaluate the SLOs at the minute the cron fired for and send what is owed; then copy
 * alert history to Postgres, which may be down (the evaluation never waits for it).
 */
export async function evaluateSlos(env: Env, controller: ScheduledController): Promise<void> {
  const manager = alertManager(env);
  const summary = await manager.evaluate(controller.scheduledTime);
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
