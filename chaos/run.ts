// npm run chaos [-- --json] [--profile full|ci] [--seed N] [--only id,id] [--url URL --operator-token T
//   --bootstrap-token B [--faults http://127.0.0.1:PORT] [--redis] [--eviction]]
// Without --url: starts `npm run dev` in an isolated mirror (chaos/target.ts), runs the experiments, stops it.
// With --url: runs against that server (started with LOCAL_FAULT_PROXY_PORT for fault targets; see docs/chaos.md).
// Exit code 1 when an experiment failed or lost anything.
import { parseArgs } from "node:util";
import { experiments } from "./experiments.ts";
import { adminFor } from "./fixture.ts";
import type { Profile } from "./model.ts";
import { formatReport } from "./report.ts";
import { type ExperimentReport, runExperiment } from "./runner.ts";
import { remoteTarget, startLocalTarget, type Target } from "./target.ts";

const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    profile: { type: "string", default: "full" },
    seed: { type: "string", default: "15" },
    only: { type: "string" },
    url: { type: "string" },
    "operator-token": { type: "string" },
    "bootstrap-token": { type: "string" },
    "admin-email": { type: "string", default: "chaos-admin@example.com" },
    faults: { type: "string" },
    redis: { type: "boolean", default: false },
    eviction: { type: "boolean", default: false },
  },
});
const profile = values.profile as Profile;
if (profile !== "full" && profile !== "ci") throw new Error("--profile must be full or ci");
const only = values.only?.split(",");
const selected = experiments.filter((e) => !only || only.includes(e.id));
const progress = (line: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);

let target: Target;
if (values.url) {
  if (!values["operator-token"] || !values["bootstrap-token"]) {
    throw new Error("--url needs --operator-token and --bootstrap-token (or an admin that exists)");
  }
  target = remoteTarget({
    url: values.url,
    operatorToken: values["operator-token"],
    bootstrapToken: values["bootstrap-token"],
    faultControlUrl: values.faults,
    redis: values.redis,
    eviction: values.eviction,
  });
} else {
  progress("starting npm run dev in an isolated mirror (Redis and the OpenAI stand-in of its own)");
  target = await startLocalTarget();
}
if (target.logFile) progress(`dev server output: ${target.logFile}`);
const reports: ExperimentReport[] = [];
const printDevLog = () => {
  if (!target.logFile) return;
  const tail = target.log().split("\n").slice(-60).join("\n");
  console.error(`--- dev server output: ${target.logFile} (last lines) ---\n${tail}`);
};
try {
  const admin = await adminFor(target, values["admin-email"]);
  for (const [index, experiment] of selected.entries()) {
    progress(`${experiment.id}: starting`);
    reports.push(
      await runExperiment(target, admin, experiment, { profile, seed: Number(values.seed) + index, log: progress }),
    );
  }
} catch (error) {
  printDevLog();
  throw error;
} finally {
  await target.stop();
}
console.log(
  values.json ? JSON.stringify({ date: new Date().toISOString(), profile, reports }, null, 2) : formatReport(reports),
);
const failed = reports.some((r) => r.status === "failed" || r.status === "aborted" || r.operations.lost > 0);
if (failed) printDevLog();
process.exitCode = failed ? 1 : 0;
