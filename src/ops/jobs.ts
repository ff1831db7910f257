import type { Env } from "../env.ts";
import { log } from "../observability/log.ts";

/** The one alert manager: alert state is global. */
export const alertManager = (env: Env) => env.ALERTS.get(env.ALERTS.idFromName("global"));

/** Cron, every minute: evaluate the SLOs at the minute the cron fired for, and send what is owed. */
export async function evaluateSlos(env: Env, controller: ScheduledController): Promise<void> {
  const summary = await alertManager(env).evaluate(controller.scheduledTime);
  if (summary.deliveries.retrying || summary.deliveries.rejected) {
    log("warn", "alert notifications pending", { ...summary.deliveries, open: summary.open });
  }
}
