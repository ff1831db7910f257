// The chaos experiments that run in CI (issue #15: database-failure, redis-unavailable, ai-provider-outage and
// queue-redelivery), on the `ci` profile, against one isolated `npm run dev` (chaos/target.ts). Each must pass
// with 0 operations lost; on failure the report and the dev server's last lines are the assertion message.
// The experiments bring their own embedded stack, so the server-Postgres pass of .ci/run (TEST_DATABASE_URL)
// does not run them a second time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { experiments } from "../../chaos/experiments.ts";
import { adminFor } from "../../chaos/fixture.ts";
import { formatReport } from "../../chaos/report.ts";
import { runExperiment } from "../../chaos/runner.ts";
import { startLocalTarget, type Target } from "../../chaos/target.ts";
import type { Actor } from "../../chaos/workload.ts";

const IN_CI = ["database-failure", "redis-unavailable", "ai-provider-outage", "queue-redelivery"];
const SEED = 15;

describe.skipIf(Boolean(process.env.TEST_DATABASE_URL))("chaos experiments (ci profile)", () => {
  let target: Target;
  let admin: Actor;

  beforeAll(async () => {
    target = await startLocalTarget();
    admin = await adminFor(target, "chaos-admin@example.com");
  }, 180_000);

  afterAll(async () => {
    await target?.stop();
  }, 60_000);

  for (const [index, id] of IN_CI.entries()) {
    it(`${id}: steady state recovers, every invariant holds, 0 lost`, async () => {
      const experiment = experiments.find((e) => e.id === id);
      if (!experiment) throw new Error(`no experiment ${id}`);
      const report = await runExperiment(target, admin, experiment, {
        profile: "ci",
        seed: SEED + index,
        log: (line) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`),
      });
      console.error(formatReport([report]));
      const context = `${formatReport([report])}\n--- dev server (last lines) ---\n${target.log().split("\n").slice(-40).join("\n")}`;
      // Redis comes from redis-server on this machine (.ci/run has it); without it this one is skipped, and says so.
      if (report.status === "skipped") expect(report.reason, context).toMatch(/redis/);
      else {
        expect(report.status, context).toBe("passed");
        expect(report.operations.lost, context).toBe(0);
        expect(report.operations.attempted, context).toBeGreaterThanOrEqual(experiment.workload.minOperations.ci);
      }
    }, 420_000);
  }
});
