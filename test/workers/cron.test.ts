import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { cronJobs, registerCronJob, runCron } from "../../workers/cron.ts";

describe("scheduled: cron dispatcher", () => {
  it("runs every job of the firing cron, isolates failures and counts each run", async () => {
    const ran: string[] = [];
    registerCronJob("*/5 * * * *", "test-ok", async () => {
      ran.push("ok");
    });
    registerCronJob("*/5 * * * *", "test-fails", async () => {
      throw new Error("job broke");
    });
    registerCronJob("0 * * * *", "test-other-cron", async () => {
      ran.push("other");
    });
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const ctx = createExecutionContext();
    await runCron(createScheduledController({ cron: "*/5 * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(ran).toEqual(["ok"]);
    const runs = writes.mock.calls.map(([point]) => point?.blobs).filter((b) => b?.[0] === "cron_job_runs_total");
    expect(runs).toEqual(
      expect.arrayContaining([
        ["cron_job_runs_total", "test", "test-ok", "ok"],
        ["cron_job_runs_total", "test", "test-fails", "error"],
      ]),
    );
    cronJobs.clear();
  });
});
