// npm run bench:answers [-- options]: the answer path and the value of the search cache. Imports a SciFact
// subset into a fresh `npm run dev` (or --url), then, one request at a time: hybrid search the first time
// (computed), at once again (isolate memory, L1) and after the L1 lifetime (Redis, L2); POST /api/rag/query
// as JSON (cold, and again) and as SSE (first delta, done). Writes its block of docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { join, relative, resolve } from "node:path";
import { startCpuMeter } from "../lib/cpu.ts";
import { parseOptions } from "../lib/options.ts";
import { runScope } from "../lib/run-scope.ts";
import { readCorpus, readJudgedQueries } from "../retrieval/dataset.ts";
import { floorPass, jsonAnswers, type Settings, searchPasses, streamedAnswers, warmUp } from "./measure.ts";
import { type AnswersReport, renderReport, writeReport } from "./report.ts";
import { accessToken, existingTarget, freshTarget, importAndWait, type Target } from "./server.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const WARM_UP = 10;
const USAGE = `usage: npm run bench:answers -- [options]
  --docs N             the first N documents of the corpus (default 1000)
  --queries N          judged train claims per measured pass (default 200; three disjoint sets are used)
  --top-k N            top_k of the searches (default 10)
  --no-l2              skip the L2-only pass (it waits out the 60 s L1 lifetime once)
  --url URL            use a running server (admin from BENCH_ADMIN_EMAIL and BENCH_ADMIN_PASSWORD,
                       bootstrapped first when ADMIN_BOOTSTRAP_TOKEN is set)
  --source S           what npm run dev runs: head (a copy of the last commit, default) or working-tree
                       (a copy of the files as they are now, other people's uncommitted edits included)
  --port N             port of the npm run dev it starts otherwise (default 8799)
  --data DIR           BEIR folder (default ../shared/data/scifact)
  --timeout-minutes N  the whole benchmark stops after this long (default 30)
  --no-write           print the block only; docs/benchmarks.md is left alone
Without --url, npm run dev gets an empty Redis database of 127.0.0.1:6379 (unless REDIS_URL is set),
whose keys are deleted at the end. RETRIEVAL_*, RAG_*, CACHE_* and KB_CHUNK_* pass to npm run dev.`;

const { args, int, oneOf } = parseOptions(USAGE, {
  docs: { type: "string", default: "1000" },
  queries: { type: "string", default: "200" },
  "top-k": { type: "string", default: "10" },
  "no-l2": { type: "boolean", default: false },
  url: { type: "string" },
  port: { type: "string", default: "8799" },
  source: { type: "string", default: "head" },
  data: { type: "string", default: join(ROOT, "..", "shared", "data", "scifact") },
  "timeout-minutes": { type: "string", default: "30" },
  "no-write": { type: "boolean", default: false },
});
const docs = int("docs");
const perPass = int("queries");
const topK = int("top-k");
const port = int("port");
const deadline = Date.now() + int("timeout-minutes") * 60_000;
const source = oneOf("source", ["head", "working-tree"]);
const SETTINGS = /^(RETRIEVAL_|RAG_|CACHE_|KB_CHUNK_|EMBEDDING_MODEL$)/;
// The passes stop themselves at the deadline; the scope's time limit, a minute later, is the backstop.
const { say, defer, command, runMain } = runScope("bench:answers", { stopAt: deadline + 60_000 });

async function main(): Promise<number> {
  const started = new Date();
  const corpus = (await readCorpus(args.data as string)).slice(0, docs);
  // SciFact repeats a few claim texts under other ids: a repeat would be a cache hit, so each text once.
  const judged = (await readJudgedQueries(args.data as string, "train")).queries;
  const claims = [...new Map(judged.map((q) => [q.text, q])).values()];
  if (3 * perPass + WARM_UP > claims.length) {
    throw new Error(
      `--queries ${perPass}: three disjoint sets and ${WARM_UP} warm-up claims need ${3 * perPass + WARM_UP}, there are ${claims.length}`,
    );
  }
  const pass = (i: number) => claims.slice(i * perPass, (i + 1) * perPass);
  const [forSearch, forJson, forStream] = [pass(0), pass(1), pass(2)];
  const warm = claims.slice(-WARM_UP);

  let target: Target;
  let commit: string;
  if (args.url) {
    target = await existingTarget(args.url);
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } else {
    const log = join(ROOT, "bench", "answers", "logs", `dev-${started.toISOString().replace(/[:.]/g, "-")}.log`);
    ({ target, commit } = await freshTarget(ROOT, source, port, log, defer, say));
    say(`${target.l2.note}; dev log ${relative(ROOT, log)}`);
  }
  const { client } = target;
  say(`importing ${corpus.length} documents`);
  const indexed = await importAndWait(client, corpus, { stallMs: 120_000, deadline, say });
  say(
    `indexed: ${indexed.ready} ready, ${indexed.failed} failed (${indexed.duplicates} already there) in ${indexed.seconds} s`,
  );

  const settings: Settings = { topK, l2: !args["no-l2"] && target.l2.on !== false, deadline, say };
  say(`warm-up: ${WARM_UP} claims through every request kind`);
  await warmUp(client, await accessToken(target), warm, topK);
  const cpu = cpuMeter(target);
  const floor = await floorPass(client, perPass, settings);
  say(`search: ${forSearch.length} claims`);
  const search = await searchPasses(client, forSearch, settings);
  say(`answers (JSON): ${forJson.length} claims, each twice`);
  const answers = await jsonAnswers(client, forJson, settings);
  say(`answers (SSE): ${forStream.length} claims`);
  const stream = await streamedAnswers(client, await accessToken(target), forStream, settings);

  const report: AnswersReport = {
    command,
    started_at: started.toISOString(),
    run_seconds: (Date.now() - started.getTime()) / 1000,
    commit,
    target: target.description,
    l2: target.l2.note,
    ...(settings.l2 ? {} : { l2_skipped: args["no-l2"] ? "--no-l2" : "L2 off" }),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"} (shared; load average ${loadavg()[0]?.toFixed(2)} at the end), Node ${process.version}`,
    settings: {
      top_k: topK,
      mode: "hybrid",
      ...Object.fromEntries(
        Object.entries(process.env).filter(([k, v]) => SETTINGS.test(k) && v) as [string, string][],
      ),
    },
    corpus: { documents: corpus.length, ready: indexed.ready, failed: indexed.failed, import_seconds: indexed.seconds },
    queries: perPass,
    warm_up: WARM_UP,
    search: {
      miss: search.miss.figures(),
      l1: search.l1.figures(),
      l2: search.l2?.figures() ?? null,
      counters: search.counters,
      rounds: search.rounds,
      waited_seconds: search.waited_seconds,
    },
    answers: {
      cold: answers.cold.figures(),
      again: answers.again.figures(),
      answered: answers.tally.answered,
      no_sources: answers.tally.no_sources,
      citations_mean: answers.tally.citations / Math.max(1, answers.tally.answered + answers.tally.no_sources),
      counters: answers.counters,
    },
    stream: { first_delta: stream.firstDelta.figures(), done: stream.done.figures(), counters: stream.counters },
    floor: floor.figures(),
    cpu: cpu(),
  };
  const failures = [floor, search.miss, search.l1, search.l2, answers.cold, answers.again, stream.firstDelta].flatMap(
    (s) => (s?.errors ? [`${s.label}: ${s.errors} failed, e.g. ${s.errorSamples[0]}`] : []),
  );
  for (const line of failures) say(line);
  const block = renderReport(report);
  console.log(`\n${block}\n`);
  if (args["no-write"]) say("--no-write: docs/benchmarks.md left alone");
  else say(`wrote ${relative(ROOT, await writeReport(ROOT, block))}`);
  say(`done in ${Math.round(report.run_seconds)} s`);
  return failures.length ? 1 : 0;
}

/** CPU time during the measured passes: the server's, this client's, and the rest of the machine's. */
function cpuMeter(target: Target) {
  const read = startCpuMeter(() => (target.processes?.() ?? []).map((info) => ({ role: "server", info })));
  return () => {
    const { wall, byRole, client, busy, others } = read();
    const share = (n: number) => Math.round((100 * n) / (wall * cpus().length));
    const measured = target.processes !== undefined;
    return {
      seconds: Math.round(wall),
      machine_busy_pct: share(busy),
      server_pct: measured ? share(byRole.server ?? 0) : null,
      client_pct: share(client),
      others_pct: measured ? share(others) : null,
    };
  };
}

void runMain(main);
