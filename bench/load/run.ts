// npm run bench:load [-- options]: load scenarios against a fresh `npm run dev`, one after another, each with a
// fixed number of connections for a fixed time: the floors (GET /health, GET /api/auth/me), sign-in (many accounts
// under the default limits, and one account to see the limiter answer), flag evaluation, search, answers (JSON)
// and uploads. Per scenario: requests/s, the non-2xx share by status, latency p50/p95/p99, and CPU by role.
// npm run dev runs in a private copy of HEAD (bench/ingest/dev-server.ts; --source working-tree for uncommitted
// code) with its own data and port, Redis off, loopback only: the developer's own stack is left alone, and edits
// made meanwhile do not reload the Worker under load (a reload also drops the local queue's pending messages).
// Everything stops by itself.
// Writes its block of docs/benchmarks.md and bench/load/results/<date>.json. --smoke: every scenario for a
// second, nothing written, exit 1 on any 5xx or unanswered request.
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { join, relative, resolve } from "node:path";
import { configVariableNames } from "../../src/config.ts";
import { freePort } from "../../test/node/dev-server.ts";
import { createSnapshot, type SnapshotSource, startDevServer } from "../ingest/dev-server.ts";
import { startCpuMeter } from "../lib/cpu.ts";
import { parseOptions } from "../lib/options.ts";
import { writeDocBlock, writeResultsFile } from "../lib/report.ts";
import { runScope } from "../lib/run-scope.ts";
import { runScenario } from "./generator.ts";
import { END, type LoadReport, renderBlock, type ScenarioRun, SECTION, START } from "./report.ts";
import { prepare, SCENARIOS, type ScenarioName } from "./setup.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const USAGE = `usage: npm run bench:load -- [options]
  --seconds N            measured seconds per scenario (default 20)
  --warm-up N            unmeasured seconds before each (default 2)
  --connections N        concurrent keep-alive connections per scenario (default 8)
  --accounts N           accounts the sign-in scenario takes in turn (default 300: at most 10 logins each
                         per minute under the default RATE_LIMIT_LOGIN, enough for 130 logins/s)
  --docs N               SciFact documents imported for search and answers (default 300)
  --uploads N            distinct documents the uploads scenario may send (default 3000)
  --only LIST            scenarios to run, in this order (default all: ${SCENARIOS.join(",")})
  --smoke                every scenario for 1 s (no warm-up, 4 connections, small set-up; requests sent in that
                         second are waited for); writes nothing; exit 1 on any 5xx, unanswered request, or a
                         scenario without answers
  --source S             what npm run dev runs: head (a copy of the last commit, default) or working-tree
  --timeout-minutes N    the whole run stops after this long (default 15)
  --no-write             print the block only; docs/benchmarks.md and results/ are left alone`;

const { args, int, fail, oneOf } = parseOptions(USAGE, {
  seconds: { type: "string", default: "20" },
  "warm-up": { type: "string", default: "2" },
  connections: { type: "string", default: "8" },
  accounts: { type: "string", default: "300" },
  docs: { type: "string", default: "300" },
  uploads: { type: "string", default: "3000" },
  only: { type: "string" },
  smoke: { type: "boolean", default: false },
  source: { type: "string", default: "head" },
  "timeout-minutes": { type: "string", default: "15" },
  "no-write": { type: "boolean", default: false },
});
const smoke = args.smoke;
const seconds = smoke ? 1 : int("seconds");
const warmUp = smoke ? 0 : int("warm-up", 0);
const connections = smoke ? 4 : int("connections");
const accounts = smoke ? 20 : int("accounts");
const docs = smoke ? 30 : int("docs");
const uploads = smoke ? 200 : int("uploads");
const wanted = (args.only?.split(",").map((s) => s.trim()) ?? [...SCENARIOS]) as ScenarioName[];
if (!wanted.length || wanted.some((name) => !SCENARIOS.includes(name))) {
  fail(`--only must list scenarios among ${SCENARIOS.join(", ")}`);
}
const source: SnapshotSource = oneOf("source", ["head", "working-tree"]);
const deadline = Date.now() + int("timeout-minutes") * 60_000;
const { say, defer, stopAll, command, runMain } = runScope("bench:load", { stopAt: deadline });

async function main(): Promise<number> {
  const started = new Date();
  const snapshot = await createSnapshot(ROOT, source);
  defer(() => snapshot.remove(), "the copy of the checkout");
  const commit = `${snapshot.commit}${snapshot.changes.length ? ` + the working tree (${snapshot.changes.length} changed files)` : ""}`;
  // Hermetic: no configuration variable of this shell (DATABASE_URL, OPENAI_API_KEY...) reaches npm run dev.
  for (const name of configVariableNames) delete process.env[name];
  const bootstrapToken = randomBytes(24).toString("base64url");
  const logFile = join(ROOT, "bench", "load", "logs", `dev-${started.toISOString().replace(/[:.]/g, "-")}.log`);
  const port = await freePort();
  say(`starting npm run dev -- --reset in ${snapshot.dir} (a copy of ${source}) on port ${port}, Redis off`);
  const server = await startDevServer({
    root: snapshot.dir,
    port,
    logFile,
    startTimeoutMs: 180_000,
    env: {
      ADMIN_BOOTSTRAP_TOKEN: bootstrapToken,
      LOG_LEVEL: "warn",
      // Off, so that a shared Redis neither serves nor receives this run's cache entries.
      REDIS_URL: "redis://127.0.0.1:1",
      // Set-up only: the accounts are registered from one address (the limit is 5 an hour per address).
      // The login limit, which the sign-in scenarios measure, stays at its default.
      RATE_LIMIT_REGISTER: "100000/3600",
    },
  });
  defer(() => server.stop(), "npm run dev");
  say(`npm run dev answers on ${server.url}; its output: ${relative(ROOT, logFile)}`);

  const prepared = await prepare(
    { base: server.url, bootstrapToken, connections, accounts, docs, uploads, deadline, say },
    wanted,
  );
  const roleOf = (cmd: string) => (/workerd/.test(cmd) ? "workerd" : /scripts\/dev\.ts/.test(cmd) ? "dev_ts" : "other");
  const processes = () => server.tree().map((info) => ({ role: roleOf(info.command), info }));

  const results: ScenarioRun[] = [];
  for (const scenario of prepared.scenarios) {
    say(`${scenario.name}: ${scenario.route}, ${scenario.connections} connections, ${warmUp} s + ${seconds} s`);
    const meter = startCpuMeter(processes);
    const result = await runScenario(server.url, scenario, {
      seconds,
      warmUpSeconds: warmUp,
      timeoutMs: 30_000,
      drain: smoke,
    });
    const cpu = meter();
    const perSecond = (s: number | undefined) => Math.round(((s ?? 0) / cpu.wall) * 100) / 100;
    const run: ScenarioRun = {
      ...result,
      cpu: {
        workerd: perSecond(cpu.byRole.workerd),
        dev_ts: perSecond(cpu.byRole.dev_ts),
        client: perSecond(cpu.client),
        others: perSecond(cpu.others),
      },
    };
    results.push(run);
    const statuses = Object.entries(run.statuses)
      .map(([status, n]) => `${status}×${n}`)
      .join(" ");
    say(
      `  ${run.rps} req/s (${run.ok_rps} 2xx/s), p50 ${run.latency_ms.p50} p95 ${run.latency_ms.p95} p99 ${run.latency_ms.p99} ms; ${statuses}`,
    );
    for (const line of run.samples) say(`  sample: ${line}`);
  }
  await stopAll();

  const report: LoadReport = {
    started_at: started.toISOString(),
    run_seconds: (Date.now() - started.getTime()) / 1000,
    command,
    commit,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"} (shared; load average ${loadavg()[0]?.toFixed(2)} at the end), Node ${process.version}`,
    server: `\`npm run dev -- --reset\` in a copy of ${source === "head" ? "HEAD" : "the working tree"}: PGlite + pgvector, local embedder and composer, Redis off (no L2 cache), RATE_LIMIT_REGISTER raised for the set-up, every other variable at its default`,
    options: { seconds, warm_up_seconds: warmUp, connections },
    setup: prepared.setup,
    scenarios: results,
  };
  const block = renderBlock(report);
  console.log(`\n${block}\n`);
  const failing = results.filter(
    (r) => r.requests === 0 || Object.keys(r.statuses).some((s) => s === "error" || s.startsWith("5")),
  );
  for (const r of failing) say(`${r.name}: ${JSON.stringify(r.statuses)}`);
  if (smoke || args["no-write"]) {
    say(`${smoke ? "--smoke" : "--no-write"}: docs/benchmarks.md and results/ left alone`);
  } else {
    const doc = await writeDocBlock(ROOT, { start: START, end: END, section: SECTION }, block);
    say(`wrote ${relative(ROOT, doc)} and ${relative(ROOT, await writeResultsFile(ROOT, "load", report))}`);
  }
  say(`done in ${Math.round(report.run_seconds)} s${failing.length ? `; 5xx or unanswered in ${failing.length}` : ""}`);
  return failing.length ? 1 : 0;
}

void runMain(main);
