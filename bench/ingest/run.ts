// npm run bench:ingest [-- options]: ingests the SciFact corpus through the real path (bulk import, queue,
// consumer, stores) of `npm run dev` with the local embedder, then writes docs/benchmarks.md and
// bench/ingest/results/<date>.json. See docs/benchmarks.md for what it measures.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { existingTarget } from "../answers/server.ts";
import { parseOptions } from "../lib/options.ts";
import { runScope } from "../lib/run-scope.ts";
import { ApiClient } from "./client.ts";
import { type ImportBody, importBodies, readBeirCorpus, SOURCE_TYPE } from "./corpus.ts";
import { createSnapshot, type DevServer, readLog, type Snapshot, startDevServer } from "./dev-server.ts";
import { machine, machineCpu, type ProcessInfo, roleOf } from "./proc.ts";
import { type BenchResults, type RunResult, writeBenchmarksDoc, writeResults } from "./report.ts";
import {
  type DocumentSample,
  distribution,
  histogramQuantileUpperBound,
  parseHistogram,
  parseQueueBatches,
  summariseDocuments,
} from "./summary.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const USAGE = `usage: npm run bench:ingest -- [options]
  --runs N             full runs, each on a fresh npm run dev (default 3)
  --limit N            only the first N documents of the corpus (a quick trial)
  --per-request N      documents per import request (default 1000)
  --corpus PATH        BEIR corpus.jsonl (default ../shared/data/scifact/corpus.jsonl)
  --port N             port for the dev server it starts (default 8797)
  --source S           what npm run dev runs: head (a copy of the last commit, default) or
                       working-tree (a copy of the files as they are now, uncommitted changes included)
  --url URL            use a running server instead (one run; admin from BENCH_ADMIN_EMAIL and
                       BENCH_ADMIN_PASSWORD, bootstrapped first when ADMIN_BOOTSTRAP_TOKEN is set)
  --timeout-minutes N  the whole benchmark stops after this long (default 45)
  --stall-seconds N    a run stops when no document finished for this long (default 180)
  --no-write           print the results only (no docs/benchmarks.md, no results/ file)
  --render FILE        only rewrite the docs/benchmarks.md section from a saved results/ file`;

const IMPORT_MAX_BYTES = 50 * 1024 * 1024; // KB_MAX_IMPORT_BYTES default
const REQUEST_TIMEOUT_MS = 30_000;
const IMPORT_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 1_000;
const DEV_START_TIMEOUT_MS = 180_000;

const { args, int, optionalInt, oneOf } = parseOptions(USAGE, {
  runs: { type: "string", default: "3" },
  limit: { type: "string" },
  "per-request": { type: "string", default: "1000" },
  corpus: { type: "string", default: join(ROOT, "..", "shared", "data", "scifact", "corpus.jsonl") },
  port: { type: "string", default: "8797" },
  url: { type: "string" },
  source: { type: "string", default: "head" },
  "timeout-minutes": { type: "string", default: "45" },
  "stall-seconds": { type: "string", default: "180" },
  "no-write": { type: "boolean", default: false },
  render: { type: "string" },
});
const runs = args.url ? 1 : int("runs");
const limit = optionalInt("limit");
const perRequest = int("per-request");
const port = int("port");
const source = oneOf("source", ["head", "working-tree"]);
let snapshot: Snapshot | undefined;
const stallMs = int("stall-seconds") * 1000;
const benchDeadline = Date.now() + int("timeout-minutes") * 60_000;

const benchStarted = new Date();
const machineAtStart = machine();
const stamp = benchStarted
  .toISOString()
  .replace(/[:.]/g, "-")
  .replace(/-\d{3}Z$/, "Z");
const logDir = join(ROOT, "bench", "ingest", "logs");
// The runs stop themselves at the deadline; the scope's time limit, a minute later, is the backstop.
const { say, defer, command, runMain } = runScope("bench:ingest", { stopAt: benchDeadline + 60_000 });

async function main(): Promise<number> {
  await mkdir(logDir, { recursive: true });
  if (args.render) {
    const file = resolve(args.render);
    const saved = JSON.parse(await readFile(file, "utf8")) as BenchResults;
    await writeBenchmarksDoc(ROOT, saved, relative(ROOT, file));
    say(`rewrote docs/benchmarks.md from ${relative(ROOT, file)}`);
    return 0;
  }
  const records = await readBeirCorpus(args.corpus as string, limit);
  const bodies = importBodies(records, perRequest, IMPORT_MAX_BYTES);
  say(`${records.length} documents from ${args.corpus} in ${bodies.length} import request(s)`);

  if (!args.url) {
    snapshot = await createSnapshot(ROOT, source);
    const made = snapshot;
    defer(() => made.remove(), "the copy of the checkout");
    say(
      `running npm run dev in ${made.dir}: a copy of ${source === "head" ? `commit ${made.commit}` : "the working tree"}`,
    );
  }

  const results: RunResult[] = [];
  for (let run = 1; run <= runs; run++) {
    // Start another run only if it fits in the time left, judging by the slowest run so far.
    const needed = Math.max(0, ...results.map((r) => r.wall_seconds + 60)) * 1000;
    if (Date.now() + needed > benchDeadline) {
      say(`not enough time left for another run: ${run - 1} of ${runs} runs done`);
      break;
    }
    say(`run ${run} of ${runs}`);
    const result = args.url ? await runAgainst(args.url, bodies) : await runOnFreshDevServer(run, bodies);
    results.push(result);
    printRun(result);
    if (result.outcome !== "done") break; // a stuck or failing app: report it rather than repeat it
  }

  const bench: BenchResults = {
    benchmark: "bench/ingest",
    command,
    started_at: benchStarted.toISOString(),
    git: gitDescription(snapshot),
    machine: { ...machineAtStart, node: process.version, platform: `${process.platform} ${process.arch}` },
    corpus: {
      path: relative(ROOT, args.corpus as string),
      documents: records.length,
      bytes: bodies.reduce((sum, b) => sum + b.bytes, 0),
    },
    settings: {
      per_request: perRequest,
      import_requests: bodies.length,
      target: args.url
        ? args.url
        : `npm run dev -- --reset in a copy of ${snapshot?.source === "head" ? "HEAD" : "the working tree"}`,
      queue: { max_batch_size: 10, max_batch_timeout_seconds: 5, max_retries: 5 },
      chunking: { KB_CHUNK_SIZE: 1000, KB_CHUNK_OVERLAP: 150, EMBEDDING_BATCH_SIZE: 96 },
    },
    runs: results,
  };
  if (args["no-write"]) {
    say("--no-write: nothing written");
  } else {
    const resultsPath = await writeResults(ROOT, bench);
    await writeBenchmarksDoc(ROOT, bench, resultsPath);
    const written = [resultsPath, "docs/benchmarks.md"];
    say(`wrote ${written.join(" and ")}`);
  }
  return results.every((r) => r.outcome === "done" && r.documents.failed === 0) ? 0 : 1;
}

async function runOnFreshDevServer(run: number, bodies: ImportBody[]): Promise<RunResult> {
  const bootstrapToken = randomBytes(24).toString("base64url");
  const logFile = join(logDir, `dev-${stamp}-run${run}.log`);
  say(`starting npm run dev -- --reset on port ${port} (log: ${relative(ROOT, logFile)})`);
  if (!snapshot) throw new Error("no copy of the checkout to run npm run dev in");
  const server = await startDevServer({
    root: snapshot.dir,
    port,
    env: { ADMIN_BOOTSTRAP_TOKEN: bootstrapToken },
    logFile,
    startTimeoutMs: DEV_START_TIMEOUT_MS,
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const outcome = await server.stop();
    const note = outcome.killed.length ? `, SIGKILLed ${outcome.killed.join(" ")}` : "";
    say(`stopped npm run dev (process group ${server.pid}${note})`);
    if (outcome.leftovers.length) console.error(`still running after stop: ${outcome.leftovers.join(" ")}`);
  };
  defer(stop, "npm run dev");
  try {
    const client = new ApiClient(server.url, REQUEST_TIMEOUT_MS);
    const admin = benchAdmin();
    await client.bootstrap(bootstrapToken, admin);
    await client.login(admin.email, admin.password);
    const result = await measure(client, bodies, server);
    await stop();
    const log = await readLog(logFile);
    result.dev_log = summariseLog(log, relative(ROOT, logFile));
    return result;
  } finally {
    await stop();
  }
}

async function runAgainst(url: string, bodies: ImportBody[]): Promise<RunResult> {
  const { client } = await existingTarget(url);
  const existing = await client.json("GET", `/api/admin/kb/documents?source_type=${SOURCE_TYPE}&page_size=1`, 200);
  if (Number(existing.total) > 0) {
    throw new Error(
      `${url} already holds ${existing.total} ${SOURCE_TYPE} documents: the import would count them as duplicates`,
    );
  }
  return measure(client, bodies, undefined);
}

function benchAdmin() {
  return {
    email: "bench-admin@voiceassist.test",
    password: randomBytes(18).toString("base64url"),
    full_name: "Benchmark Admin",
  };
}

async function measure(client: ApiClient, bodies: ImportBody[], server: DevServer | undefined): Promise<RunResult> {
  const cpuBefore = server ? server.tree() : [];
  const machineBefore = machineCpu();
  const ownBefore = process.cpuUsage();
  const startedAt = new Date();
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;

  // 1. Submit: the import requests one after another, as a client uploading a corpus would.
  const requests: RunResult["import_requests"] = [];
  const batches: string[] = [];
  for (const body of bodies) {
    const res = await client.call("POST", "/api/admin/kb/import", {
      body: body.ndjson,
      contentType: "application/x-ndjson",
      timeoutMs: IMPORT_TIMEOUT_MS,
    });
    requests.push({
      documents: body.documents,
      bytes: body.bytes,
      status: res.status,
      ms: Math.round(res.ms),
      queued: Number(res.json.queued ?? 0),
      duplicates: Number(res.json.duplicates ?? 0),
      rejected: Number(res.json.rejected ?? 0),
      ...(res.status === 202 ? {} : { error: res.text.slice(0, 500) }),
    });
    if (res.status === 202) batches.push(String(res.json.batch_id));
    else say(`import request answered ${res.status}: ${res.text.slice(0, 300)}`);
  }
  const submittedSeconds = seconds();
  say(`submitted ${bodies.length} request(s) in ${submittedSeconds.toFixed(1)} s; waiting for the queue to drain`);

  // 2. Wait: poll every batch once a second until all are done, the run stalls, or the time is up.
  const timeline: [number, number, number][] = [];
  let outcome: RunResult["outcome"] = batches.length ? "done" : "import_failed";
  let finished = -1;
  let lastChange = performance.now();
  let lastPrint = 0;
  let counts = { queued: 0, processing: 0, ready: 0, failed: 0 };
  const finishedBatches = new Map<string, Record<string, unknown>>();
  while (batches.length) {
    server?.tree(); // keep the process snapshot fresh for the final stop
    // A finished batch stays finished: ask only about the others (fewer queries on the one PGlite backend).
    const open = batches.filter((id) => !finishedBatches.has(id));
    const answers = await Promise.all(open.map((id) => client.json("GET", `/api/admin/kb/import/${id}`, 200)));
    open.forEach((id, i) => {
      if (answers[i]?.done === true) finishedBatches.set(id, answers[i] as Record<string, unknown>);
    });
    const progress = [...finishedBatches.values(), ...answers.filter((a) => a.done !== true)];
    counts = { queued: 0, processing: 0, ready: 0, failed: 0 };
    for (const p of progress) {
      const status = p.status as typeof counts;
      for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += Number(status[key] ?? 0);
    }
    const now = counts.ready + counts.failed;
    timeline.push([Math.round(seconds()), counts.ready, counts.failed]);
    if (now !== finished) {
      finished = now;
      lastChange = performance.now();
    }
    if (finishedBatches.size === batches.length) break;
    if (performance.now() - lastChange > stallMs) {
      outcome = "stalled";
      say(`no document finished for ${stallMs / 1000} s: stopping this run`);
      break;
    }
    if (Date.now() > benchDeadline) {
      outcome = "timeout";
      say("the time limit is reached: stopping this run");
      break;
    }
    if (seconds() - lastPrint >= 15) {
      lastPrint = seconds();
      say(
        `${seconds().toFixed(0)} s: ready ${counts.ready}, failed ${counts.failed}, processing ${counts.processing}, queued ${counts.queued}`,
      );
    }
    await sleep(POLL_MS);
  }
  const wallSeconds = seconds();
  const cpuAfter = server ? server.tree() : [];
  const machineAfter = machineCpu();
  const own = process.cpuUsage(ownBefore);

  // 3. Collect: stats, every document's timings, the queue-lag histogram.
  const stats = await client.json("GET", "/api/admin/kb/stats", 200);
  const docs = await listDocuments(client);
  const summary = summariseDocuments(docs);
  const failedDocs = docs.filter((d) => d.status === "failed");
  const stuckDocs = docs.filter((d) => d.status === "queued" || d.status === "processing");
  const metrics = await client.call("GET", "/metrics");
  const lag =
    metrics.status === 200
      ? parseHistogram(metrics.text, "voiceassist_queue_lag_seconds", { queue: "kb-ingest" })
      : null;

  const chunks = docs.reduce((sum, d) => sum + (d.status === "ready" ? d.chunk_count : 0), 0);
  const ourCpu = cpuSeconds(cpuBefore, cpuAfter);
  const treeCpu = Object.values(ourCpu).reduce((a, b) => a + b, 0);
  const benchCpu = (own.user + own.system) / 1e6;
  const machineBusy = machineAfter.busy - machineBefore.busy;
  return {
    started_at: startedAt.toISOString(),
    outcome,
    documents_submitted: bodies.reduce((sum, b) => sum + b.documents, 0),
    import_requests: requests,
    submit_seconds: round(submittedSeconds, 2),
    wall_seconds: round(wallSeconds, 2),
    documents: { ...counts, listed: docs.length },
    chunks,
    stats_chunks: Number(stats.chunks ?? 0),
    documents_per_second: round(counts.ready / wallSeconds, 2),
    chunks_per_second: round(chunks / wallSeconds, 2),
    embedding_models: [...new Set(docs.map((d) => d.embedding_model).filter(Boolean))] as string[],
    stages: summary,
    queue_lag_seconds: lag
      ? {
          count: lag.count,
          mean: round(lag.sum / Math.max(1, lag.count), 2),
          p50_at_most: histogramQuantileUpperBound(lag, 0.5),
          p95_at_most: histogramQuantileUpperBound(lag, 0.95),
        }
      : null,
    failures: {
      failed: failedDocs.length,
      stuck: stuckDocs.length,
      retried: docs.filter((d) => d.attempts > 1).length,
      samples: [...failedDocs, ...stuckDocs].slice(0, 20).map((d) => ({
        external_id: d.external_id,
        status: d.status,
        attempts: d.attempts,
        error: d.error,
      })),
    },
    cpu: server
      ? {
          by_process_seconds: Object.fromEntries(Object.entries(ourCpu).map(([k, v]) => [k, round(v, 1)])),
          bench_client_seconds: round(benchCpu, 1),
          machine_busy_seconds: round(machineBusy, 1),
          machine_capacity_seconds: round(wallSeconds * machineAtStart.cores, 1),
          other_load_seconds: round(Math.max(0, machineBusy - treeCpu - benchCpu), 1),
        }
      : null,
    timeline: timeline.filter((_, i) => i % 5 === 0 || i === timeline.length - 1),
    dev_log: null,
  };
}

async function listDocuments(client: ApiClient): Promise<(DocumentSample & Record<string, unknown>)[]> {
  const out: (DocumentSample & Record<string, unknown>)[] = [];
  for (let page = 1; ; page++) {
    const body = await client.json(
      "GET",
      `/api/admin/kb/documents?source_type=${SOURCE_TYPE}&page_size=200&page=${page}`,
      200,
    );
    const items = body.items as (DocumentSample & Record<string, unknown>)[];
    out.push(...items);
    if (items.length < 200 || out.length >= Number(body.total)) return out;
  }
}

/** CPU seconds used between two snapshots of the dev server's processes, summed by role. */
function cpuSeconds(before: ProcessInfo[], after: ProcessInfo[]): Record<string, number> {
  const start = new Map(before.map((p) => [p.pid, p.cpuSeconds]));
  const byRole: Record<string, number> = {};
  for (const p of after) {
    const role = roleOf(p.command);
    byRole[role] = (byRole[role] ?? 0) + p.cpuSeconds - (start.get(p.pid) ?? 0);
  }
  return byRole;
}

function summariseLog(log: string, file: string): NonNullable<RunResult["dev_log"]> {
  const lines = log.split("\n");
  const errors = lines.filter((l) => /"level":"error"|\[ERROR\]|✘ |Uncaught/.test(l) && !/"level":"debug"/.test(l));
  const warnings = lines.filter((l) => /"level":"warn"|\[WARNING\]/.test(l));
  const batches = parseQueueBatches(log, "kb-ingest");
  return {
    file,
    lines: lines.length,
    error_lines: errors.length,
    reloads: lines.filter((l) => l.includes("Reloading local server")).length,
    warning_lines: warnings.length,
    error_samples: [...new Set(errors.map((l) => l.slice(0, 400)))].slice(0, 10),
    queue_batches: {
      delivered: batches.length,
      not_fully_acked: batches.filter((b) => b.acked < b.size).length,
      size: distribution(batches.map((b) => b.size)),
      ms: distribution(batches.map((b) => b.ms)),
    },
  };
}

function printRun(r: RunResult): void {
  say(
    `${r.outcome}: ${r.documents.ready} ready, ${r.documents.failed} failed in ${r.wall_seconds} s → ` +
      `${r.documents_per_second} documents/s, ${r.chunks_per_second} chunks/s (${r.chunks} chunks)`,
  );
}

function gitDescription(copy: Snapshot | undefined) {
  if (copy) return { commit: copy.commit, source: copy.source, uncommitted_changes: copy.changes };
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  return { commit, source: "remote server (--url)", uncommitted_changes: [] };
}

const round = (n: number, digits: number) => Number(n.toFixed(digits));

void runMain(main);
