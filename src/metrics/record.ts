import { waitUntil } from "cloudflare:workers";
import { type Env, loadConfig } from "../env.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { labelValues, type MetricEvent, metricEventProblem } from "./catalog.ts";

export type { MetricEvent };

// Log when delivery starts failing, not on every event while the aggregator is down.
let aggregatorFailing = false;
let analyticsFailing = false;

/**
 * The waitUntil of whatever the Worker is serving now (request, queue batch, cron run), for code that is
 * not handed an ExecutionContext: `recordMetrics(env, inBackground, ...)` does not hold up the caller.
 */
export const inBackground: Pick<ExecutionContext, "waitUntil"> = {
  waitUntil: (promise) => {
    try {
      waitUntil(promise);
    } catch {
      // Nothing is being served (no I/O context): the promise runs on its own, its failure already handled.
    }
  },
};

/** The one aggregator instance: /metrics figures are global, not per isolate. */
export const metricsAggregator = (env: Env) => env.METRICS.get(env.METRICS.idFromName("global"));

/**
 * Records events in Analytics Engine and in the global aggregator behind GET /metrics.
 * An event that does not match the catalog is a programming error and rejects; delivery
 * failures never do (they are logged), so metrics cannot fail the work they measure.
 * With a ctx the aggregator call runs in waitUntil and this resolves at once.
 */
export async function recordMetrics(
  env: Env,
  ctx: Pick<ExecutionContext, "waitUntil"> | undefined,
  ...events: MetricEvent[]
): Promise<void> {
  for (const event of events) {
    const problem = metricEventProblem(event);
    if (problem) throw new TypeError(`Invalid metric event: ${problem}.`);
  }
  if (events.length === 0) return;
  writeToAnalytics(env, events);
  const delivery = metricsAggregator(env)
    .record(events)
    .then(
      () => {
        aggregatorFailing = false;
      },
      (error: unknown) => {
        if (!aggregatorFailing) log("error", "metrics aggregator unreachable", { error: describeError(error) });
        aggregatorFailing = true;
      },
    );
  if (ctx) ctx.waitUntil(delivery);
  else await delivery;
}

/**
 * Column layout (docs/metrics.md): index1 = metric name (sampling is per index, so a busy metric
 * cannot crowd out a rare one); blob1 = metric name, blob2 = environment, blob3.. = label values
 * in catalog order; double1 = value (counter increment or histogram sample).
 */
function writeToAnalytics(env: Env, events: MetricEvent[]): void {
  const config = loadConfig(env);
  const environment = config.ok ? config.config.ENVIRONMENT : "unknown";
  try {
    for (const event of events) {
      env.ANALYTICS.writeDataPoint({
        indexes: [event.name],
        blobs: [event.name, environment, ...labelValues(event)],
        doubles: [event.value],
      });
    }
    analyticsFailing = false;
  } catch (error) {
    if (!analyticsFailing) log("error", "analytics engine write failed", { error: describeError(error) });
    analyticsFailing = true;
  }
}
