import type { Env } from "../src/env.ts";
import { loadConfig } from "../src/env.ts";
import { recordMetrics } from "../src/metrics/record.ts";
import { runInWorkContext } from "../src/observability/context.ts";
import { describeError } from "../src/observability/errors.ts";
import { log } from "../src/observability/log.ts";
import { newSpanId, newTraceId } from "../src/observability/trace.ts";

export type CronJob = (env: Env, controller: ScheduledController) => Promise<void>;

/** Jobs by cron expression (wrangler.toml [triggers]); each area registers its own. */
export const cronJobs = new Map<string, Map<string, CronJob>>();

export function registerCronJob(cron: string, name: string, job: CronJob): void {
  const jobs = cronJobs.get(cron) ?? new Map<string, CronJob>();
  jobs.set(name, job);
  cronJobs.set(cron, jobs);
}

/** Runs every job registered for the firing cron; one failing job does not stop the others. */
export async function runCron(controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
  const trace = { traceId: newTraceId(), spanId: newSpanId(), sampled: true };
  await runInWorkContext({ requestId: crypto.randomUUID(), trace }, async () => {
    if (!loadConfig(env).ok) {
      log("error", "cron skipped: bad environment", { cron: controller.cron });
      return;
    }
    for (const [name, job] of cronJobs.get(controller.cron) ?? []) {
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
    log("info", "cron ran", { cron: controller.cron, jobs: [...(cronJobs.get(controller.cron)?.keys() ?? [])] });
  });
}
