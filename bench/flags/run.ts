// npm run bench:flags [-- options]: feature-flag evaluation against Unleash, on one deterministic workload
// (bench/flags/workload.ts: 200 flags in the Unleash client-API format, 1000 contexts).
// 1. In process: our compile-once evaluator (src/flags/evaluate.ts) vs the Unleash Node SDK's local
//    evaluation (unleash-client, bootstrapped offline), after checking that both agree on every flag × context.
// 2. HTTP: POST /api/flags/evaluate on a fresh `npm run dev` vs Unleash's own server (unleash-server 8.2.0,
//    installed at bench time into bench/.unleash/, on a fresh PostgreSQL database) evaluating the same flags
//    through its frontend API (POST /api/frontend), with the same closed-loop load generator at each
//    concurrency; plus the sign-in floor (GET /api/auth/me) at the same load.
// 3. Propagation (bench/flags/propagation.ts), on the same npm run dev: an admin toggles one flag back and forth;
//    per write, its own round trip, the change event on an open SSE stream, and a ~5 ms evaluate poller's
//    first new answer. `--only propagation` runs this part alone (npm run dev and the workload, nothing else).
// Writes its block of docs/benchmarks.md and bench/flags/results/<date>.json. Stops by itself, and stops
// everything it started (npm run dev, unleash-server, the database) on every way out.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { EvaluationContext } from "../../src/flags/model.ts";
import { freePort } from "../../test/node/dev-server.ts";
import { accessToken, freshTarget, type Target } from "../answers/server.ts";
import { type ApiClient, ApiError } from "../ingest/client.ts";
import { type ProcessInfo, roleOf } from "../ingest/proc.ts";
import { startCpuMeter } from "../lib/cpu.ts";
import { parseOptions } from "../lib/options.ts";
import { runScope } from "../lib/run-scope.ts";
import { runInProcess } from "./inprocess.ts";
import { type LoadTarget, runLoad, single } from "./load.ts";
import { profileWorker } from "./profile.ts";
import { measurePropagation, type PropagationReport } from "./propagation.ts";
import {
  type CpuShare,
  type FlagsReport,
  type HttpReport,
  propagationBlock,
  renderBlock,
  writeBlock,
  writeResults,
} from "./report.ts";
import {
  clientFeatures,
  ensureInstalled,
  seedUnleash,
  startUnleash,
  UNLEASH_VERSION,
  type UnleashServer,
} from "./unleash-server.ts";
import { DEFAULT_WORKLOAD, generateWorkload, refusedByUnleash, without } from "./workload.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const USAGE = `usage: npm run bench:flags -- [options]
  --flags N              flags in the workload (default ${DEFAULT_WORKLOAD.flags})
  --contexts N           evaluation contexts (default ${DEFAULT_WORKLOAD.contexts})
  --seed N               workload seed (default ${DEFAULT_WORKLOAD.seed})
  --rounds N             timed in-process rounds per engine (default 7)
  --round-ms N           length of one in-process round (default 500)
  --concurrency LIST     HTTP concurrency steps (default 16,64)
  --seconds N            measured seconds per HTTP step and endpoint (default 15, after 3 s of warm-up)
  --users N              signed-in users the HTTP requests are spread over (default 4; registering is
                         limited to 5 an hour per address)
  --agreement N          contexts checked through both servers before the load (default 100)
  --no-http              in process only
  --no-floor             skip the floors (GET /health, GET /api/auth/me) in the HTTP steps
  --no-profile           skip the CPU profile of the Worker under load (where its time goes)
  --writes N             propagation: measured flag writes (default 50, after 3 unmeasured)
  --poll-ms N            propagation: pause between the evaluate poller's requests (default 5)
  --no-propagation       skip the propagation measurement
  --only propagation     only that: npm run dev with the workload imported, no Unleash, no load; prints its
                         figures and writes nothing
  --source S             what npm run dev runs: head (a copy of the last commit, default) or working-tree
  --port N               port of the npm run dev it starts (default 8795); unleash-server gets a free one
  --timeout-minutes N    the whole benchmark stops after this long (default 10)
  --no-write             print the block only; docs/benchmarks.md and results/ are left alone
unleash-server@${UNLEASH_VERSION} is installed into bench/.unleash/ (git-ignored) on first use and run with the
project's Node 22 on a new database unleash_bench_<pid> of PostgreSQL at 127.0.0.1:5432 (user postgres),
dropped at the end.`;

const { args, int, ints, oneOf } = parseOptions(USAGE, {
  flags: { type: "string", default: String(DEFAULT_WORKLOAD.flags) },
  contexts: { type: "string", default: String(DEFAULT_WORKLOAD.contexts) },
  seed: { type: "string", default: String(DEFAULT_WORKLOAD.seed) },
  rounds: { type: "string", default: "7" },
  "round-ms": { type: "string", default: "500" },
  concurrency: { type: "string", default: "16,64" },
  seconds: { type: "string", default: "15" },
  users: { type: "string", default: "4" },
  agreement: { type: "string", default: "100" },
  "no-http": { type: "boolean", default: false },
  "no-floor": { type: "boolean", default: false },
  "no-profile": { type: "boolean", default: false },
  writes: { type: "string", default: "50" },
  "poll-ms": { type: "string", default: "5" },
  "no-propagation": { type: "boolean", default: false },
  only: { type: "string" },
  source: { type: "string", default: "head" },
  port: { type: "string", default: "8795" },
  "timeout-minutes": { type: "string", default: "10" },
  "no-write": { type: "boolean", default: false },
});
const workloadOptions = {
  ...DEFAULT_WORKLOAD,
  flags: int("flags"),
  contexts: int("contexts"),
  seed: int("seed", 0),
};
const rounds = int("rounds");
const roundMs = int("round-ms");
const seconds = int("seconds");
const userCount = Math.min(5, int("users"));
const agreementContexts = int("agreement");
const propagationWrites = int("writes");
const pollMs = int("poll-ms");
const only = args.only === undefined ? undefined : oneOf("only", ["propagation"]);
const port = int("port");
const deadline = Date.now() + int("timeout-minutes") * 60_000;
const concurrencies = ints("concurrency", 1, 1000);
const source = oneOf("source", ["head", "working-tree"]);
const WARM_UP_SECONDS = 3;
const PROFILE_CONCURRENCY = 16;
const PROFILE_SECONDS = 12;
const PROPAGATION_FLAG = "bench.propagation";
const { say, defer, stopAll, command, runMain } = runScope("bench:flags", { stopAt: deadline });

// ---- HTTP ---------------------------------------------------------------------------------------------------

interface User {
  id: string;
  token: string;
}

/** Registers and signs in `n` users (role user): the callers of POST /api/flags/evaluate. */
async function signInUsers(client: ApiClient, n: number): Promise<User[]> {
  const users: User[] = [];
  for (let i = 0; i < n; i++) {
    const account = {
      email: `bench-flags-${i}-${randomBytes(3).toString("hex")}@voiceassist.test`,
      password: randomBytes(18).toString("base64url"),
    };
    const created = await client.raw("POST", "/api/auth/register", {
      bearer: null,
      contentType: "application/json",
      body: JSON.stringify({ ...account, full_name: `Flags Benchmark ${i}` }),
    });
    if (created.status !== 201) throw new ApiError("POST /api/auth/register", created);
    const login = await client.raw("POST", "/api/auth/login", {
      bearer: null,
      contentType: "application/json",
      body: JSON.stringify(account),
    });
    if (login.status !== 200) throw new ApiError("POST /api/auth/login", login);
    users.push({ id: String(created.json.id), token: String(login.json.access_token) });
  }
  return users;
}

/** CPU by role over a step: our server's processes (or Unleash's), this client, the rest of the machine. */
function cpuMeter(processes: () => { role: string; info: ProcessInfo }[]): () => CpuShare {
  const read = startCpuMeter(processes);
  return () => {
    const { wall, byRole, busy, others } = read();
    const cores = Object.fromEntries(Object.entries(byRole).map(([role, s]) => [role, s / wall]));
    return { cores, machine_busy: busy / wall, others: others / wall };
  };
}

interface FrontendToggle {
  name: string;
  enabled: boolean;
  variant?: { name: string; enabled: boolean; payload?: unknown };
}

/** The same contexts through both servers: enabled and variant must match for every flag. */
async function httpAgreement(
  ours: LoadTarget,
  theirs: LoadTarget,
  keys: string[],
  n: number,
): Promise<HttpReport["agreement"]> {
  let compared = 0;
  let mismatches = 0;
  const samples: string[] = [];
  for (let i = 0; i < n; i++) {
    const [a, b] = await Promise.all([single(ours, i), single(theirs, i)]);
    if (a.status !== 200) throw new Error(`POST /api/flags/evaluate: ${a.status} ${a.body.slice(0, 300)}`);
    if (b.status !== 200) throw new Error(`POST /api/frontend: ${b.status} ${b.body.slice(0, 300)}`);
    const flags = (JSON.parse(a.body) as { flags: Record<string, { enabled: boolean; variant: { name: string } }> })
      .flags;
    const toggles = new Map((JSON.parse(b.body) as { toggles: FrontendToggle[] }).toggles.map((t) => [t.name, t]));
    for (const key of keys) {
      compared++;
      const mine = flags[key];
      const other = toggles.get(key);
      const enabledHere = mine?.enabled === true;
      const variantHere = mine?.variant?.name ?? "disabled";
      const variantThere = other?.variant?.name ?? "disabled";
      if (enabledHere !== Boolean(other) || (enabledHere && variantHere !== variantThere)) {
        mismatches++;
        if (samples.length < 5) {
          samples.push(
            `\`${key}\` for request ${i}: ours ${enabledHere ? `on/${variantHere}` : "off"}, Unleash ${other ? `on/${variantThere}` : "off"}`,
          );
        }
      }
    }
  }
  return { contexts: n, compared, mismatches, samples };
}

async function runHttp(
  workload: ReturnType<typeof generateWorkload>,
  started: Date,
): Promise<{ report: HttpReport; commit: string; propagation: PropagationReport | null; propagationSkipped?: string }> {
  const logDir = join(ROOT, "bench", "flags", "logs");
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const node = existsSync(join(ROOT, "node_modules", ".bin", "node"))
    ? join(ROOT, "node_modules", ".bin", "node")
    : process.execPath;

  // Both servers start at once: npm run dev (a private copy of the tree) and unleash-server.
  const t0 = performance.now();
  const devStart = freshTarget(ROOT, source, port, join(logDir, `dev-${stamp}.log`), defer, say).then((r) => ({
    ...r,
    seconds: (performance.now() - t0) / 1000,
  }));
  const unleashStart = (async () => {
    const entry = await ensureInstalled(join(ROOT, "bench", ".unleash"), say);
    const t1 = performance.now();
    const server = await startUnleash({
      entry,
      node,
      port: await freePort(),
      logFile: join(logDir, `unleash-${stamp}.log`),
      defer,
      say,
      startTimeoutMs: 180_000,
    });
    say(`unleash-server ${UNLEASH_VERSION} on ${server.url} (database ${server.database})`);
    return { server, seconds: (performance.now() - t1) / 1000 };
  })().catch((error: unknown) => {
    // Without Unleash's server the rest still runs: our side, on the workload it would have had.
    const why = (error as Error).message.trim().replace(/\s*\n\s*/g, " — ");
    say(`unleash-server unavailable, HTTP runs without it: ${why}`);
    return { server: undefined, seconds: Number.NaN, why };
  });
  const [dev, unleash] = await Promise.all([devStart, unleashStart]);
  const server: UnleashServer | undefined = unleash.server;
  const { client } = dev.target;
  say(`npm run dev on ${client.baseUrl} (${dev.target.l2.note})`);

  // Unleash first: what it refuses is left out of both sides (without its server: what it is known to refuse).
  const expected = refusedByUnleash(workload.doc);
  const seeded = server
    ? await seedUnleash(server, workload.doc.features, workload.doc.segments, workload.contextFields, say)
    : { created: [], refused: expected, strategyTypesAdded: [], seconds: Number.NaN };
  const leftOut = new Map(seeded.refused);
  for (const [flag, why] of expected)
    if (!leftOut.has(flag)) say(`expected Unleash to refuse ${flag} (${why}); it did not`);
  const doc = without(workload.doc, leftOut);
  if (server) {
    const served = await clientFeatures(server);
    if (served.features.length !== doc.features.length) {
      throw new Error(`Unleash serves ${served.features.length} flags, ${doc.features.length} were created`);
    }
  }
  const keys = doc.features.map((f) => f.name);

  const importMs = await importFlags(client, doc);

  const users = await signInUsers(client, userCount);
  say(`${users.length} users signed in`);
  // Each request: one user, one workload context evaluated as that user (we always evaluate the caller as
  // itself; Unleash is sent the same user id). No currentTime: both evaluate at the time of the request.
  const contexts: EvaluationContext[] = workload.contexts.map((context, i) => {
    const { currentTime: _now, ...rest } = context;
    return { ...rest, userId: (users[i % users.length] as User).id };
  });
  const bodies = contexts.map((context) => JSON.stringify({ context }));
  const ours: LoadTarget = {
    label: "ours: POST /api/flags/evaluate",
    base: client.baseUrl,
    method: "POST",
    path: "/api/flags/evaluate",
    requests: bodies.map((body, i) => ({
      headers: {
        authorization: `Bearer ${(users[i % users.length] as User).token}`,
        "content-type": "application/json",
      },
      body,
    })),
    check: (body) => {
      const n = Object.keys((JSON.parse(body) as { flags?: object }).flags ?? {}).length;
      return n === keys.length ? undefined : `${n} flags in the answer, ${keys.length} expected`;
    },
  };
  const theirs: LoadTarget | undefined = server && {
    label: "unleash: POST /api/frontend",
    base: server.url,
    method: "POST",
    path: "/api/frontend",
    requests: bodies.map((body) => ({
      headers: { authorization: server.frontendToken, "content-type": "application/json" },
      body,
    })),
    check: (body) => (Array.isArray((JSON.parse(body) as { toggles?: unknown }).toggles) ? undefined : "no toggles"),
  };
  const signInFloor: LoadTarget = {
    label: "floor: GET /api/auth/me (sign-in, no flags)",
    base: client.baseUrl,
    method: "GET",
    path: "/api/auth/me",
    requests: users.map((u) => ({ headers: { authorization: `Bearer ${u.token}` } })),
  };
  const stackFloor: LoadTarget = {
    label: "floor: GET /health (no sign-in)",
    base: client.baseUrl,
    method: "GET",
    path: "/health",
    requests: [{ headers: {} }],
  };

  // Unleash's frontend API reads a cache it refreshes on its own revision events: retried until it has caught up.
  let agreement: HttpReport["agreement"] = { contexts: 0, compared: 0, mismatches: 0, samples: [] };
  if (theirs) {
    agreement = await httpAgreement(ours, theirs, keys, agreementContexts);
    for (let tries = 0; agreement.mismatches > 0 && tries < 5; tries++) {
      say(`HTTP agreement: ${agreement.mismatches} mismatches; again in 3 s (Unleash's frontend cache may lag)`);
      await sleep(3_000);
      agreement = await httpAgreement(ours, theirs, keys, agreementContexts);
    }
    say(`HTTP agreement: ${agreement.mismatches} mismatches of ${agreement.compared}`);
  }

  const processes = () => [
    ...(dev.target.processes?.() ?? []).map((info) => ({ role: ourRole(info.command), info })),
    ...(server?.tree() ?? []).map((info) => ({ role: "unleash-server", info })),
  ];
  const steps: HttpReport["steps"] = [];
  const targets = [ours, ...(theirs ? [theirs] : []), ...(args["no-floor"] ? [] : [signInFloor, stackFloor])];
  const perStepMs = targets.length * (seconds + WARM_UP_SECONDS + 2) * 1000;
  for (const [k, concurrency] of concurrencies.entries()) {
    if (Date.now() + perStepMs > deadline - 60_000) {
      say(`skipping concurrency ${concurrency}: not enough time left before the time limit`);
      continue;
    }
    const results: HttpReport["steps"][number]["results"] = [];
    // Alternate the order between steps, so neither server always goes first on a warming machine.
    const order = k % 2 === 0 || !theirs ? targets : [targets[1], targets[0], ...targets.slice(2)];
    for (const target of order as LoadTarget[]) {
      say(`load: ${target.label} at concurrency ${concurrency} for ${WARM_UP_SECONDS} + ${seconds} s`);
      const cpu = cpuMeter(processes);
      const result = await runLoad(target, { concurrency, seconds, warmUpSeconds: WARM_UP_SECONDS });
      const share = cpu();
      // CPU per request of the server under test (cores averaged over the step ÷ requests per second).
      const mine =
        target === theirs ? ["unleash-server"] : Object.keys(share.cores).filter((r) => r !== "unleash-server");
      const serverCores = mine.reduce((sum, role) => sum + (share.cores[role] ?? 0), 0);
      const serverMs = result.rps > 0 ? (serverCores * 1000) / result.rps : Number.NaN;
      results.push({ ...result, cpu: share, server_cpu_ms_per_request: serverMs });
      say(
        `  ${result.rps} req/s, p50 ${result.latency_ms.p50} ms, p99 ${result.latency_ms.p99} ms, server CPU ${serverMs.toFixed(2)} ms/request, ${result.errors} errors${result.error_samples.length ? ` (${result.error_samples[0]})` : ""}`,
      );
    }
    results.sort(
      (a, b) => targets.findIndex((t) => t.label === a.label) - targets.findIndex((t) => t.label === b.label),
    );
    steps.push({ concurrency, results });
  }

  let profile: HttpReport["profile"] = null;
  let profileSkipped: string | undefined;
  if (args["no-profile"]) {
    profileSkipped = "--no-profile";
  } else if (Date.now() + (PROFILE_SECONDS + 10) * 1000 > deadline - 30_000) {
    profileSkipped = "not enough time left before the time limit";
  } else {
    say(
      `profile: the Worker's isolate while ${ours.label} runs at concurrency ${PROFILE_CONCURRENCY} for ${PROFILE_SECONDS} s`,
    );
    try {
      profile = await profileWorker(() => processes().filter((p) => p.role !== "unleash-server"), ours, {
        concurrency: PROFILE_CONCURRENCY,
        seconds: PROFILE_SECONDS,
      });
      for (const stage of profile.stages.slice(0, 6)) say(`  ${stage.busy_pct} % ${stage.stage}`);
    } catch (error) {
      profileSkipped = `profiling failed: ${(error as Error).message}`;
      say(profileSkipped);
    }
  }

  // Last, as it adds a flag to the rule set (the load's answers are checked for the workload's flags only).
  let propagation: PropagationReport | null = null;
  let propagationSkipped: string | undefined;
  if (args["no-propagation"]) {
    propagationSkipped = "--no-propagation";
  } else if (Date.now() + propagationWrites * 500 + 20_000 > deadline - 30_000) {
    propagationSkipped = "not enough time left before the time limit";
  } else {
    propagation = await propagationOn(dev.target);
  }

  const unleashNotes = [
    `unleash-server ${UNLEASH_VERSION} (OSS), Node ${execFileSync(node, ["-v"], { encoding: "utf8" }).trim()}, PostgreSQL 15 on this machine; frontend token bound to \`default:development\`; its SDK-API rate limit (20,000 requests a minute per token) lifted through TOKEN_AUTHENTICATION_RATE_LIMIT_PER_MINUTE and SDK_API_RATE_LIMIT_PER_MINUTE.`,
    "Unleash's frontend API keeps every flag definition in memory (refreshed on its own change events, not per request) and evaluates each request with its Node SDK (the same unleash-client 6.12.1: `getVariant` for every flag), answering with the enabled flags only and `Cache-Control: no-cache`: nothing is cached per context. Ours answers with every flag (enabled, variant, value, reason, version), hence the larger body.",
    ...(seeded.strategyTypesAdded.length
      ? [
          `A fresh Unleash 8.2.0 database has no \`${seeded.strategyTypesAdded.join("`, `")}\` strategy type (its SDK still evaluates it): declared through its admin API as a custom strategy type, so those flags could stay.`,
        ]
      : []),
    "Unleash 8 refuses feature-level (environment) variants unless its `enableLegacyVariants` experimental flag is on (UNLEASH_EXPERIMENTAL_ENABLE_LEGACY_VARIANTS=true here), so those flags could stay.",
  ];
  const notes =
    "why" in unleash
      ? [
          `**unleash-server could not be run, so the HTTP rows have no Unleash side** (the flags it is known to refuse are still left out): ${unleash.why}`,
        ]
      : unleashNotes;
  return {
    commit: dev.commit,
    propagation,
    ...(propagationSkipped ? { propagationSkipped } : {}),
    report: {
      flags: keys.length,
      left_out: [...leftOut].map(([flag, why]) => ({ flag, why: why.replace(/^.*"message":"([^"]+)".*$/, "$1") })),
      unleash_notes: notes,
      agreement,
      users: users.length,
      steps,
      profile,
      ...(profileSkipped ? { profile_skipped: profileSkipped } : {}),
      setup: {
        dev_start_s: dev.seconds,
        unleash_start_s: unleash.seconds,
        unleash_seed_s: seeded.seconds,
        import_ms: importMs,
      },
    },
  };
}

/** Imports the flags into npm run dev, replacing what it holds; returns how long that took (ms). */
async function importFlags(client: ApiClient, doc: ReturnType<typeof without>): Promise<number> {
  const t0 = performance.now();
  const imported = await client.json("POST", "/api/admin/flags/import?mode=replace", 200, {
    body: JSON.stringify(doc),
    contentType: "application/json",
    timeoutMs: 120_000,
  });
  const ms = performance.now() - t0;
  say(
    `imported ${doc.features.length} flags into npm run dev in ${Math.round(ms)} ms: ${JSON.stringify(imported).slice(0, 200)}`,
  );
  return ms;
}

/** Propagation of flag writes on this npm run dev (the admin writes; two more of its sessions observe). */
async function propagationOn(target: Target): Promise<PropagationReport> {
  say(`propagation: ${propagationWrites} toggles of ${PROPAGATION_FLAG}, an SSE stream and a ${pollMs} ms poller`);
  return measurePropagation({
    base: target.client.baseUrl,
    adminToken: await accessToken(target),
    streamToken: await accessToken(target),
    pollToken: await accessToken(target),
    flag: PROPAGATION_FLAG,
    writes: propagationWrites,
    warmUpWrites: 3,
    pollIntervalMs: pollMs,
    gapMs: 50,
    waitMs: 5_000,
    say,
  });
}

/** --only propagation: npm run dev with the workload imported (what Unleash is known to refuse left out). */
async function propagationOnly(workload: ReturnType<typeof generateWorkload>, started: Date): Promise<number> {
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const logFile = join(ROOT, "bench", "flags", "logs", `dev-${stamp}.log`);
  const dev = await freshTarget(ROOT, source, port, logFile, defer, say);
  say(`npm run dev on ${dev.target.client.baseUrl} (${dev.target.l2.note})`);
  await importFlags(dev.target.client, without(workload.doc, refusedByUnleash(workload.doc)));
  const propagation = await propagationOn(dev.target);
  await stopAll();
  console.log(`\n${propagationBlock(propagation).join("\n").trim()}\n`);
  say("--only propagation: docs/benchmarks.md and results/ left alone");
  return propagation.missed.stream + propagation.missed.poll ? 1 : 0;
}

/** Short roles: wrangler dev runs two workerd processes, the Worker's (with an inspector) and its proxy's. */
const ourRole = (command: string) => {
  if (/workerd/.test(command)) return /--inspector-addr/.test(command) ? "workerd (Worker)" : "workerd (proxy)";
  const role = roleOf(command);
  return role.startsWith("dev.ts") ? "dev.ts" : (role.split(" ")[0] as string);
};

// ---- main ----------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const workload = generateWorkload(workloadOptions);
  say(
    `workload: ${workload.doc.features.length} flags, ${workload.doc.segments.length} segments, ${workload.contexts.length} contexts (seed ${workloadOptions.seed})`,
  );
  if (only === "propagation") return propagationOnly(workload, started);
  const inProcess = await runInProcess(workload.doc, workload.contexts, {
    rounds,
    roundMs,
    warmUpMs: 1_000,
    say,
  });
  say(
    `in process: ours evaluate ${Math.round(inProcess.ours.evaluate.median)}/s, evaluateAll ${Math.round(inProcess.ours.evaluateAll.median)}/s; unleash-client isEnabled ${Math.round(inProcess.unleash.isEnabled.median)}/s, getVariant ${Math.round(inProcess.unleash.getVariant.median)}/s`,
  );

  let commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  let http: HttpReport | null = null;
  let httpSkipped: string | undefined;
  let propagation: PropagationReport | null = null;
  let propagationSkipped: string | undefined = "--no-http (it runs on the same npm run dev)";
  if (args["no-http"]) {
    httpSkipped = "--no-http";
  } else {
    const result = await runHttp(workload, started);
    ({ commit, propagation, propagationSkipped } = result);
    http = result.report;
  }
  await stopAll();

  const report: FlagsReport = {
    command,
    started_at: started.toISOString(),
    run_seconds: (Date.now() - started.getTime()) / 1000,
    commit,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"} (shared; load average ${loadavg()[0]?.toFixed(2)} at the end), Node ${process.version}`,
    workload: {
      seed: workloadOptions.seed,
      flags: workload.doc.features.length,
      contexts: workload.contexts.length,
      stats: workload.stats,
    },
    in_process: inProcess,
    http,
    ...(httpSkipped ? { http_skipped: httpSkipped } : {}),
    propagation,
    ...(propagationSkipped ? { propagation_skipped: propagationSkipped } : {}),
  };
  const block = renderBlock(report);
  console.log(`\n${block}\n`);
  if (args["no-write"]) {
    say("--no-write: docs/benchmarks.md left alone");
  } else {
    say(
      `wrote ${relative(ROOT, await writeBlock(ROOT, block))} and ${relative(ROOT, await writeResults(ROOT, report))}`,
    );
  }
  const a = inProcess.agreement;
  const disagreements =
    a.enabled_mismatches + a.variant_mismatches + a.payload_mismatches + (http?.agreement.mismatches ?? 0);
  if (disagreements) say(`${disagreements} disagreements between the engines: see the report`);
  say(`done in ${Math.round(report.run_seconds)} s`);
  return disagreements ? 1 : 0;
}

void runMain(main);
