import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { runCron } from "../../src/jobs/cron.ts";
import { cronJobs } from "../../src/jobs/schedule.ts";
import wranglerToml from "../../wrangler.toml?raw";

describe("scheduled: cron dispatcher", () => {
  it("runs every job of the firing cron, isolates failures and counts each run", async () => {
    const ran: string[] = [];
    const table = {
      "*/5 * * * *": {
        "test-ok": async () => {
          ran.push("ok");
        },
        "test-fails": async () => {
          throw new Error("job broke");
        },
      },
      "0 0 1 1 *": {
        "test-other-cron": async () => {
          ran.push("other");
        },
      },
    };
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const ctx = createExecutionContext();
    await runCron(table, createScheduledController({ cron: "*/5 * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(ran).toEqual(["ok"]);
    const runs = writes.mock.calls.map(([point]) => point?.blobs).filter((b) => b?.[0] === "cron_job_runs_total");
    expect(runs).toEqual(
      expect.arrayContaining([
        ["cron_job_runs_total", "test", "test-ok", "ok"],
        ["cron_job_runs_total", "test", "test-fails", "error"],
      ]),
    );
    writes.mockRestore();
  });
});

describe("scheduled: the job table", () => {
  it("lists each job once, under the crons of wrangler.toml [triggers]", () => {
    const triggers = /\[triggers\]\s*crons\s*=\s*\[([^\]]*)\]/.exec(wranglerToml)?.[1] ?? "";
    const crons = [...triggers.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    expect(crons).toEqual(["* * * * *", "*/5 * * * *", "30 3 * * *"]);
    expect(Object.keys(cronJobs).sort()).toEqual([...crons].sort());
    const names = Object.values(cronJobs).flatMap((jobs) => Object.keys(jobs));
    expect(new Set(names).size).toBe(names.length);
  });
});
