// npm run bench:retrieval [-- options]: imports SciFact through the bulk import of a fresh `npm run dev`
// (or --url), asks every judged claim through POST /api/kb/search in keyword, vector and hybrid mode,
// and scores nDCG@10 and Recall@100 with ./evaluate.ts. Writes its block of docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { existingTarget } from "../answers/server.ts";
import { ApiClient } from "../ingest/client.ts";
import { importBodies } from "../ingest/corpus.ts";
import { createSnapshot, type DevServer, startDevServer } from "../ingest/dev-server.ts";
import { parseOptions } from "../lib/options.ts";
import { runScope } from "../lib/run-scope.ts";
import { readCorpus, readJudgedQueries, SOURCE_TYPE } from "./dataset.ts";
import { documentRanking, evaluate, percentile } from "./evaluate.ts";
import { type BenchReport, type ModeFigures, writeReport } from "./report.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const MODES = ["keyword", "vector", "hybrid"] as const;
type Mode = (typeof MODES)[number];
const USAGE = `usage: npm run bench:retrieval -- [options]
  --url URL            use a running server (admin from BENCH_ADMIN_EMAIL and BENCH_ADMIN_PASSWORD,
                       bootstrapped first when ADMIN_BOOTSTRAP_TOKEN is set); SciFact already there is reused
  --port N             port of the npm run dev it starts otherwise (default 8798)
  --data DIR           BEIR folder (default ../shared/data/scifact)
  --split NAME         qrels split (default train)
  --queries N          only the first N judged queries (a quick trial)
  --modes LIST         comma-separated, from keyword,vector,hybrid (default all three)
  --timeout-minutes N  the whole benchmark stops after this long (default 60)
  --no-write           print the figures only
Retrieval and chunking settings (RETRIEVAL_*, KB_CHUNK_*) pass from the environment to npm run dev.`;

const { args, int, optionalInt, fail } = parseOptions(USAGE, {
  url: { type: "string" },
  port: { type: "string", default: "8798" },
  data: { type: "string", default: join(ROOT, "..", "shared", "data", "scifact") },
  split: { type: "string", default: "train" },
  queries: { type: "string" },
  modes: { type: "string", default: MODES.join(",") },
  "timeout-minutes": { type: "string", default: "60" },
  "no-write": { type: "boolean", default: false },
});
const modes = (args.modes as string).split(",").map((m) => m.trim()) as Mode[];
if (!modes.length || modes.some((m) => !MODES.includes(m))) fail("--modes takes keyword, vector, hybrid");
const port = int("port");
const queryLimit = optionalInt("queries");
const deadline = Date.now() + int("timeout-minutes") * 60_000;

const REQUEST_TIMEOUT_MS = 30_000;
const IMPORT_TIMEOUT_MS = 10 * 60_000;
const IMPORT_MAX_BYTES = 50 * 1024 * 1024; // KB_MAX_IMPORT_BYTES default
const DOCS_PER_IMPORT = 1_000;
const STALL_MS = 60_000;
const MAX_REQUEUE_ROUNDS = 3;
const WARM_UP_QUERIES = 10;
const MAX_SEARCH_ERRORS = 10;
// Settings that change the figures; recorded with them when set in the environment.
const SETTINGS = /^(RETRIEVAL_|KB_CHUNK_|EMBEDDING_MODEL$)/;

// The loops stop at the deadline; the scope's time limit, a minute later, is the backstop.
const { say, defer, command, runMain } = runScope("bench:retrieval", { stopAt: deadline + 60_000 });

async function main(): Promise<number> {
  const started = new Date();
  const corpus = await readCorpus(args.data as string);
  const { queries: allQueries, judgments } = await readJudgedQueries(args.data as string, args.split as string);
  const queries = allQueries.slice(0, queryLimit);
  const judged = new Map(queries.map((q) => [q.id, judgments.get(q.id) ?? new Map<string, number>()]));
  say(`${corpus.length} documents; ${queries.length} ${args.split} queries with judgments`);

  const { client, target, commit } = args.url ? await existingServer(args.url) : await freshServer();
  const ingest = await importCorpus(client, corpus);
  say(`index: ${ingest.ready} documents ready, ${ingest.failed} failed, ${ingest.chunks} chunks`);

  const figures: Partial<Record<Mode, ModeFigures>> = {};
  for (const mode of modes) {
    figures[mode] = await runQueries(client, mode, queries, judged);
    const f = figures[mode];
    say(
      `${mode}: nDCG@10 ${f?.ndcg10.toFixed(4)}, Recall@100 ${f?.recall100.toFixed(4)}, p50 ${f?.latency_ms.p50} ms, p95 ${f?.latency_ms.p95} ms (server ${f?.server_ms.p50}/${f?.server_ms.p95} ms)${f?.vector_skipped ? ` (vector skipped: ${f.vector_skipped})` : ""}`,
    );
  }

  const report: BenchReport = {
    command,
    started_at: started.toISOString(),
    commit,
    target,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, Node ${process.version}`,
    settings: Object.fromEntries(Object.entries(process.env).filter(([k, v]) => SETTINGS.test(k) && v)) as Record<
      string,
      string
    >,
    corpus: { documents: corpus.length, ...ingest },
    queries: { split: args.split as string, count: queries.length },
    modes: figures,
  };
  if (args["no-write"]) say("--no-write: docs/benchmarks.md left alone");
  else say(`wrote ${relative(ROOT, await writeReport(ROOT, report))}`);
  return ingest.failed === 0 ? 0 : 1;
}

async function freshServer() {
  const snapshot = await createSnapshot(ROOT, "working-tree");
  defer(() => snapshot.remove(), "the copy of the working tree");
  const bootstrapToken = randomBytes(24).toString("base64url");
  const logFile = join(ROOT, "bench", "retrieval", "logs", `dev-${Date.now()}.log`);
  say(`starting npm run dev -- --reset in a copy of the working tree on port ${port} (log ${relative(ROOT, logFile)})`);
  const server: DevServer = await startDevServer({
    root: snapshot.dir,
    port,
    // Request logs at debug level would cost more than the searches they log.
    env: { ADMIN_BOOTSTRAP_TOKEN: bootstrapToken, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" },
    logFile,
    startTimeoutMs: 180_000,
  });
  defer(async () => {
    const outcome = await server.stop();
    say(`stopped npm run dev (process group ${server.pid})`);
    if (outcome.leftovers.length) console.error(`still running after stop: ${outcome.leftovers.join(" ")}`);
  }, "npm run dev");
  const client = new ApiClient(server.url, REQUEST_TIMEOUT_MS);
  const admin = { email: "bench-admin@voiceassist.test", password: randomBytes(18).toString("base64url") };
  await client.bootstrap(bootstrapToken, { ...admin, full_name: "Benchmark Admin" });
  await client.login(admin.email, admin.password);
  const changed = snapshot.changes.length ? ` + ${snapshot.changes.length} changed files` : "";
  return {
    client,
    target: "npm run dev -- --reset (PGlite + pgvector, local embedder)",
    commit: snapshot.commit + changed,
  };
}

async function existingServer(url: string) {
  const { client } = await existingTarget(url);
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  return { client, target: url, commit };
}

/** Bulk import, then wait until every batch is done (documents already there count as duplicates). */
async function importCorpus(client: ApiClient, corpus: Awaited<ReturnType<typeof readCorpus>>) {
  const t0 = performance.now();
  const batches: string[] = [];
  for (const body of importBodies(corpus, DOCS_PER_IMPORT, IMPORT_MAX_BYTES)) {
    const summary = await client.json("POST", "/api/admin/kb/import", 202, {
      body: body.ndjson,
      contentType: "application/x-ndjson",
      timeoutMs: IMPORT_TIMEOUT_MS,
    });
    batches.push(String(summary.batch_id));
  }
  let finished = -1;
  let lastChange = performance.now();
  let requeued = 0;
  let requeueRounds = 0;
  for (;;) {
    const progress = await Promise.all(batches.map((id) => client.json("GET", `/api/admin/kb/import/${id}`, 200)));
    const done = progress.reduce((sum, p) => {
      const status = p.status as { ready: number; failed: number };
      return sum + status.ready + status.failed;
    }, 0);
    if (progress.every((p) => p.done === true)) break;
    if (done !== finished) {
      if (Math.floor(done / 500) !== Math.floor(finished / 500)) say(`import: ${done} documents indexed`);
      finished = done;
      lastChange = performance.now();
    }
    if (performance.now() - lastChange > STALL_MS) {
      // wrangler dev drops its local queue's pending messages when it reloads: send them again, as an admin would.
      if (++requeueRounds > MAX_REQUEUE_ROUNDS) throw new Error(`import stalled at ${done} documents`);
      const stuck = await stuckDocuments(client);
      say(`no document finished for ${STALL_MS / 1000} s: reindexing the ${stuck.length} still waiting`);
      for (const id of stuck) await client.json("POST", `/api/admin/kb/documents/${id}/reindex`, 202);
      requeued += stuck.length;
      lastChange = performance.now();
    }
    if (Date.now() > deadline) throw new Error(`import unfinished at the time limit (${done} documents)`);
    await sleep(1_000);
  }
  const count = async (status: string) =>
    Number(
      (await client.json("GET", `/api/admin/kb/documents?source_type=${SOURCE_TYPE}&status=${status}&page_size=1`, 200))
        .total,
    );
  const stats = await client.json("GET", "/api/admin/kb/stats", 200);
  return {
    ready: await count("ready"),
    failed: await count("failed"),
    chunks: Number(stats.chunks ?? 0),
    import_seconds: Math.round((performance.now() - t0) / 1000),
    requeued,
  };
}

/** Ids of the documents still queued or processing (their queue messages lost, after a stall). */
async function stuckDocuments(client: ApiClient): Promise<string[]> {
  const ids: string[] = [];
  for (const status of ["queued", "processing"]) {
    for (let page = 1; ; page++) {
      const path = `/api/admin/kb/documents?source_type=${SOURCE_TYPE}&status=${status}&page_size=200&page=${page}`;
      const items = (await client.json("GET", path, 200)).items as { id: string }[];
      ids.push(...items.map((d) => d.id));
      if (items.length < 200) break;
    }
  }
  return ids;
}

async function runQueries(
  client: ApiClient,
  mode: Mode,
  queries: { id: string; text: string }[],
  judged: Map<string, Map<string, number>>,
): Promise<ModeFigures> {
  const search = (query: string) =>
    client.call("POST", "/api/kb/search", {
      contentType: "application/json",
      body: JSON.stringify({ query, top_k: 100, mode, filters: { source_type: SOURCE_TYPE } }),
    });
  for (const q of queries.slice(0, WARM_UP_QUERIES)) await search(q.text);
  const rankings = new Map<string, string[]>();
  const clientMs: number[] = [];
  const serverMs: number[] = [];
  const skipped = new Set<string>();
  let errors = 0;
  for (const q of queries) {
    if (Date.now() > deadline) throw new Error(`${mode} queries unfinished at the time limit`);
    const res = await search(q.text);
    if (res.status !== 200) {
      if (++errors > MAX_SEARCH_ERRORS) throw new Error(`${mode} search keeps failing: ${res.status} ${res.text}`);
      continue;
    }
    const body = res.json as {
      results: { external_id: string | null }[];
      took_ms: number;
      retrievers: { vector: { skipped?: string } };
    };
    rankings.set(q.id, documentRanking(body.results.map((r) => r.external_id)));
    clientMs.push(res.ms);
    serverMs.push(body.took_ms);
    if (mode !== "keyword" && body.retrievers.vector.skipped) skipped.add(body.retrievers.vector.skipped);
  }
  const scores = evaluate(rankings, judged);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    ndcg10: scores.ndcg10,
    recall100: scores.recall100,
    errors,
    latency_ms: { p50: round(percentile(clientMs, 50)), p95: round(percentile(clientMs, 95)) },
    server_ms: { p50: round(percentile(serverMs, 50)), p95: round(percentile(serverMs, 95)) },
    ...(skipped.size ? { vector_skipped: [...skipped].join("; ") } : {}),
  };
}

void runMain(main);
