import type { Env } from "../env.ts";
import { loadConfig } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { runInWorkContext } from "../observability/context.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { newSpanId, newTraceId } from "../observability/trace.ts";

export type CronJob = (env: Env, controller: ScheduledController) => Promise<void>;

/** Jobs by cron expression (as in wrangler.toml [triggers]), then by job name. */
export type CronTable = Readonly<Record<string, Readonly<Record<string, CronJob>>>>;

/** Runs every job the table lists for the firing cron; one failing job does not stop the others. */
export async function runCron(
  table: CronTable,
  controller: ScheduledController,
  env: Env,
  ctx: ExecutionContext,
): Promise<void> {
  const jobs = Object.entries(table[controller.cron] ?? {});
  const trace = { traceId: newTraceId(), spanId: newSpanId(), sampled: true };
  await runInWorkContext({ requestId: crypto.randomUUID(), trace }, async () => {
    if (!loadConfig(env).ok) {
      log("error", "cron skipped: bad environment", { cron: controller.cron });
      return;
    }
    for (const [name, job] of jobs) {
      const started = Date.now();
      let outcome = "ok";
      try {
        await job(env, controller);
      } catch (error) {
        outcome = "error";
        log("error", "cron job failed", { job: name, error: describeError(error) });
      }
      ctx.waitUntil(
        recordMetrics(
          env,
          ctx,
          { name: "cron_job_runs_total", labels: { job: name, outcome }, value: 1 },
          { name: "cron_job_duration_seconds", labels: { job: name }, value: (Date.now() - started) / 1000 },
        ),
      );
    }
    log("info", "cron ran", { cron: controller.cron, jobs: jobs.map(([name]) => name) });
  });
}
