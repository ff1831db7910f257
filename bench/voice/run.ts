// npm run bench:voice [-- options]: the realtime voice relay's cost per 20 ms audio frame, and how many
// sessions `npm run dev` sustains. An echoing OpenAI Realtime upstream (bench/voice/echo-upstream.ts, a
// process of its own) stands in for OpenAI; `npm run dev` runs in upstream mode against it
// (OPENAI_API_KEY=sk-bench, OPENAI_BASE_URL=<echo>/v1). At each step of N sessions the same client sends
// 20 ms frames in real time for --seconds, first straight to the echo upstream (the baseline), then through
// GET /v1/realtime (Worker → VoiceSession Durable Object → upstream and back), and times every frame's echo.
// Overhead = relay − direct. Writes its block of docs/benchmarks.md and bench/voice/results/<date>.json.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { accessToken, type Target } from "../answers/server.ts";
import { ApiClient, ApiError } from "../ingest/client.ts";
import { createSnapshot, type DevServer, readLog, startDevServer } from "../ingest/dev-server.ts";
import { isAlive, processTree, roleOf } from "../ingest/proc.ts";
import { startCpuMeter } from "../lib/cpu.ts";
import { parseOptions } from "../lib/options.ts";
import { runScope } from "../lib/run-scope.ts";
import type { EchoStats } from "./echo-upstream.ts";
import { FRAME_MS, runStep, type StepOptions, type StepResult } from "./load.ts";
import {
  type CpuShare,
  renderBlock,
  type StepReport,
  type VoiceReport,
  verdictOf,
  writeBlock,
  writeResults,
} from "./report.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const LADDER = [1, 2, 3, 5, 10, 20, 30, 40, 60, 80, 100, 120, 160, 200, 250, 300, 400, 500];
const USAGE = `usage: npm run bench:voice -- [options]
  --max-sessions N     the ramp (${LADDER.join(", ")}, …) stops at N sessions (default 200)
  --steps LIST         exact session counts instead of the ramp, e.g. 1,10,40
  --seconds N          audio sent per session per step (default 12: past the 10 s mark, where timers and
                       limits of a session first bite)
  --p99-bound-ms N     a step keeps up when the relay's p99 round trip stays under this (default 200) and no
                       session fails; it is sustained when, besides, every frame comes back
  --url URL            use a running server (it must run with OPENAI_API_KEY set and OPENAI_BASE_URL=
                       http://127.0.0.1:<--echo-port>/v1; a user from BENCH_USER_EMAIL and BENCH_USER_PASSWORD,
                       else one is registered)
  --echo-port N        port of the echo upstream (default: a free one; give one with --url)
  --source S           what npm run dev runs: head (a copy of the last commit, default) or working-tree
  --port N             port of the npm run dev it starts otherwise (default 8796)
  --timeout-minutes N  the whole benchmark stops after this long (default 15)
  --no-write           print the block only; docs/benchmarks.md and results/ are left alone
  --render FILE        only rewrite the docs/benchmarks.md block from a saved results/ file
VOICE_* variables set in the environment pass to npm run dev.`;

const { args, int, ints, oneOf } = parseOptions(USAGE, {
  "max-sessions": { type: "string", default: "200" },
  steps: { type: "string" },
  seconds: { type: "string", default: "12" },
  "p99-bound-ms": { type: "string", default: "200" },
  url: { type: "string" },
  "echo-port": { type: "string", default: "0" },
  source: { type: "string", default: "head" },
  port: { type: "string", default: "8796" },
  "timeout-minutes": { type: "string", default: "15" },
  "no-write": { type: "boolean", default: false },
  render: { type: "string" },
});
if (args.render) {
  const saved = JSON.parse(await readFile(resolve(args.render), "utf8")) as VoiceReport;
  console.log(`wrote ${relative(ROOT, await writeBlock(ROOT, renderBlock(saved)))}`);
  process.exit(0);
}
const maxSessions = int("max-sessions");
const seconds = int("seconds");
const bound = int("p99-bound-ms");
const port = int("port");
const echoPort = int("echo-port", 0);
const deadline = Date.now() + int("timeout-minutes") * 60_000;
const steps = args.steps ? ints("steps") : [...LADDER.filter((n) => n < maxSessions), maxSessions];
const source = oneOf("source", ["head", "working-tree"]);
const { say, defer, command, runMain } = runScope("bench:voice", { stopAt: deadline });

// ---- the echo upstream, a process of its own -----------------------------------------------------------

interface Echo {
  baseUrl: string;
  pid: number;
  stats(): Promise<EchoStats>;
}

/** Starts echo-upstream.ts in its own process group; it also exits by itself when our end of its stdin closes. */
async function startEcho(): Promise<Echo> {
  const child: ChildProcess = spawn(
    process.execPath,
    [join(import.meta.dirname, "echo-upstream.ts"), "--port", String(echoPort)],
    { detached: true, stdio: ["pipe", "pipe", "inherit"] },
  );
  const pid = child.pid as number;
  defer(async () => {
    child.stdin?.end();
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      return; // gone already
    }
    for (let i = 0; i < 30 && isAlive(pid); i++) await sleep(100);
    if (isAlive(pid)) process.kill(-pid, "SIGKILL");
  }, "the echo upstream");
  const line = await new Promise<string>((resolveLine, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", resolveLine);
    child.once("exit", (code) => reject(new Error(`the echo upstream exited (${code}) before it listened`)));
    setTimeout(() => reject(new Error("the echo upstream did not start within 10 s")), 10_000).unref();
  });
  const { url } = JSON.parse(line) as { url: string };
  const statsUrl = url.replace(/\/v1$/, "/__stats");
  return {
    baseUrl: url,
    pid,
    stats: async () => (await (await fetch(statsUrl, { signal: AbortSignal.timeout(5_000) })).json()) as EchoStats,
  };
}

// ---- the server and a user -----------------------------------------------------------------------------

interface Server {
  url: string;
  description: string;
  commit: string;
  dev?: DevServer;
}

async function startServer(echo: Echo, started: Date): Promise<Server> {
  if (args.url) {
    return { url: args.url.replace(/\/$/, ""), description: args.url, commit: "(a running server)" };
  }
  const snapshot = await createSnapshot(ROOT, source);
  defer(() => snapshot.remove(), "the snapshot");
  const logFile = join(ROOT, "bench", "voice", "logs", `dev-${started.toISOString().replace(/[:.]/g, "-")}.log`);
  say(
    `starting npm run dev -- --reset in ${snapshot.dir} (a copy of ${source === "head" ? "HEAD" : "the working tree"}) on port ${port}, upstream ${echo.baseUrl}; log ${relative(ROOT, logFile)}`,
  );
  const env = { OPENAI_API_KEY: "sk-bench", OPENAI_BASE_URL: echo.baseUrl, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" };
  const dev = await startDevServer({ root: snapshot.dir, port, env, logFile, startTimeoutMs: 180_000 });
  defer(async () => {
    const { leftovers } = await dev.stop();
    say(`stopped npm run dev (process group ${dev.pid})`);
    if (leftovers.length) console.error(`[bench:voice] still running after stop: ${leftovers.join(" ")}`);
  }, "npm run dev");
  const changed = source === "head" ? "" : ` + the working tree (${snapshot.changes.length} changed files)`;
  return {
    url: dev.url,
    description: "npm run dev -- --reset (wrangler dev, PGlite, Upstash-compatible server)",
    commit: `${snapshot.commit}${changed}`,
    dev,
  };
}

/** A signed-in user (voice needs no admin): registered here unless BENCH_USER_EMAIL names one. */
async function signInUser(server: Server): Promise<Target> {
  const client = new ApiClient(server.url, 30_000);
  const given = process.env.BENCH_USER_EMAIL && process.env.BENCH_USER_PASSWORD;
  const admin = given
    ? { email: process.env.BENCH_USER_EMAIL as string, password: process.env.BENCH_USER_PASSWORD as string }
    : {
        email: `bench-voice-${randomBytes(4).toString("hex")}@voiceassist.test`,
        password: randomBytes(18).toString("base64url"),
      };
  if (!given) {
    const res = await client.raw("POST", "/api/auth/register", {
      bearer: null,
      contentType: "application/json",
      body: JSON.stringify({ ...admin, full_name: "Voice Benchmark" }),
    });
    if (res.status !== 201) throw new ApiError("POST /api/auth/register", res);
  }
  return { client, admin, description: server.description, l2: { on: "unknown", note: "" } };
}

// ---- CPU ---------------------------------------------------------------------------------------------------

/** CPU time of the server by role, the echo upstream, this client and the rest of the machine, over a step. */
function cpuMeter(server: Server, echo: Echo): () => CpuShare {
  const read = startCpuMeter(() =>
    [...(server.dev?.tree() ?? []), ...processTree(echo.pid)].map((info) => ({
      role: info.pid === echo.pid ? "echo upstream" : roleOf(info.command),
      info,
    })),
  );
  return () => {
    const { wall, byRole, client, busy, others } = read();
    const cores = (n: number) => Math.round((100 * n) / wall) / 100;
    return {
      wall_seconds: Math.round(wall * 10) / 10,
      cores: Object.fromEntries(Object.entries(byRole).map(([role, s]) => [role, cores(s)])),
      client: cores(client),
      machine_busy: cores(busy),
      others: server.dev ? cores(others) : null,
    };
  };
}

/** Error lines of the dev log grouped by what they say (ids and numbers blanked), most frequent first. */
function errorKinds(lines: string[]): { text: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes
    const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
    let text = plain.trim();
    try {
      const entry = JSON.parse(plain.slice(plain.indexOf("{"))) as { message?: string; error?: string };
      text = [entry.message, entry.error].filter(Boolean).join(": ");
    } catch {
      // not one of the app's JSON lines: the line itself
    }
    text = text
      .replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>")
      .replace(/\d+/g, "N")
      .slice(0, 200);
    counts.set(text, (counts.get(text) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([text, count]) => ({ text, count }));
}

// ---- the run ---------------------------------------------------------------------------------------------

async function measure(
  label: string,
  options: StepOptions,
  cpu: () => () => CpuShare,
): Promise<{ result: StepResult; cpu: CpuShare }> {
  const meter = cpu();
  const result = await runStep(options);
  const share = meter();
  const r = result.rtt_ms;
  say(
    `  ${label}: ${result.connected}/${result.sessions} connected, ${result.frames.echoed}/${result.frames.sent} echoed, RTT p50 ${r.p50} p99 ${r.p99} max ${r.max} ms${Object.keys(result.errors).length ? `, errors ${JSON.stringify(result.errors)}` : ""}${result.closes.length ? `, ${result.closes.length} closed` : ""}; workerd ${share.cores["workerd (the Worker)"] ?? "–"} cores, client ${share.client}, echo ${share.cores["echo upstream"] ?? "–"}`,
  );
  return { result, cpu: share };
}

async function main(): Promise<number> {
  const started = new Date();
  const load1 = loadavg()[0] ?? 0;
  const echo = await startEcho();
  say(`echo upstream at ${echo.baseUrl} (pid ${echo.pid})`);
  const server = await startServer(echo, started);
  const user = await signInUser(server);
  const relayUrl = `${server.url.replace(/^http/, "ws")}/v1/realtime`;
  const directUrl = `${echo.baseUrl.replace(/^http/, "ws")}/realtime?model=gpt-realtime`;
  const common = { seconds, connectConcurrency: 8, connectTimeoutMs: 20_000, drainMs: 5_000 };
  const direct = (sessions: number, s = seconds): StepOptions => ({
    ...common,
    seconds: s,
    url: directUrl,
    sessions,
    headers: () => ({ authorization: "Bearer sk-bench" }),
  });
  const relay = async (sessions: number, s = seconds): Promise<StepOptions> => {
    const token = await accessToken(user); // fresh for each step: access tokens last 15 minutes
    return { ...common, seconds: s, url: relayUrl, sessions, headers: () => ({ authorization: `Bearer ${token}` }) };
  };
  const cpu = () => cpuMeter(server, echo);

  say("warm-up: 2 sessions × 2 s through the relay, 1 × 1 s direct (not counted)");
  const warm = await runStep(await relay(2, 2));
  await runStep(direct(1, 1));
  if (warm.frames.echoed === 0) {
    throw new Error(
      `no frame came back through the relay in the warm-up: ${JSON.stringify({ failures: warm.connect_failures, errors: warm.error_samples, closes: warm.closes })}`,
    );
  }
  const upstreamBefore = (await echo.stats()).connections;

  const reports: StepReport[] = [];
  let stopReason = `the ramp ended at ${steps.at(-1)} sessions`;
  for (const sessions of steps) {
    // A step takes about twice --seconds plus connecting; do not start one that cannot finish in time.
    const estimate = (2 * (seconds + 5) + sessions * 0.05) * 1000;
    if (Date.now() + estimate > deadline - 30_000) {
      stopReason = `time limit: no room for ${sessions} sessions`;
      break;
    }
    say(`${sessions} session${sessions > 1 ? "s" : ""}, ${seconds} s of ${FRAME_MS} ms frames each`);
    const baseline = await measure("direct", direct(sessions), cpu);
    await sleep(1_000);
    const attempt = async () => {
      const before = await echo.stats();
      const run = await measure("relay ", await relay(sessions), cpu);
      const after = await echo.stats();
      const upstream = {
        connections: after.connections - before.connections,
        dropped: after.dropped - before.dropped,
        appends: after.appends - before.appends,
      };
      return { run, upstream, verdict: verdictOf(run.result, bound, upstream.dropped) };
    };
    let through = await attempt();
    let retried: StepReport["retried"];
    if (!through.verdict.keepsUp) {
      // One more try: on a shared machine a single burst of someone else's work can spoil a step.
      say(`  did not keep up (${through.verdict.reasons.join("; ")}): once more`);
      retried = { reasons: through.verdict.reasons, rtt_ms: through.run.result.rtt_ms };
      await sleep(2_000);
      through = await attempt();
    }
    const { run, upstream, verdict } = through;
    if (!verdict.ok) say(`  ${verdict.keepsUp ? "kept up, but" : "did not keep up"}: ${verdict.reasons.join("; ")}`);
    reports.push({
      sessions,
      direct: baseline.result,
      relay: run.result,
      direct_cpu: baseline.cpu,
      relay_cpu: run.cpu,
      sustained: verdict.ok,
      keeps_up: verdict.keepsUp,
      reasons: verdict.reasons,
      ...(retried ? { retried } : {}),
      upstream,
    });
    if (!verdict.keepsUp) {
      stopReason = `${sessions} sessions did not keep up, twice in a row`;
      break;
    }
    await sleep(2_000); // closed sessions finish their bookkeeping (session rows) before the next step
  }

  const echoStats = await echo.stats();
  const log = server.dev ? await readLog(server.dev.logFile) : "";
  const errorLines = log.split("\n").filter((l) => /"level":"error"|\b(uncaught|exception)\b/i.test(l));
  const report: VoiceReport = {
    command,
    started_at: started.toISOString(),
    run_seconds: Math.round((Date.now() - started.getTime()) / 1000),
    commit: server.commit,
    target: server.description,
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"} (shared; load average ${load1.toFixed(2)} at the start, ${loadavg()[0]?.toFixed(2)} at the end), Node ${process.version}`,
    settings: {
      seconds,
      frame_ms: FRAME_MS,
      format: "pcm16 24 kHz mono, 960 bytes or 1,280 base64 characters a frame",
      p99_bound_ms: bound,
      ...Object.fromEntries(
        Object.entries(process.env).filter(([k, v]) => k.startsWith("VOICE_") && v) as [string, string][],
      ),
    },
    steps: reports,
    stop_reason: stopReason,
    upstream: {
      connections_during_steps: echoStats.connections - upstreamBefore,
      keys: echoStats.keys.map((k) => k.replace(/(Bearer sk-).*/, "$1…")),
      other_events: echoStats.other,
    },
    dev_log: server.dev
      ? { file: relative(ROOT, server.dev.logFile), error_lines: errorLines.length, kinds: errorKinds(errorLines) }
      : null,
  };
  const block = renderBlock(report);
  console.log(`\n${block}\n`);
  if (args["no-write"]) say("--no-write: docs/benchmarks.md and results/ left alone");
  else {
    const json = await writeResults(ROOT, report);
    say(`wrote ${relative(ROOT, json)} and ${relative(ROOT, await writeBlock(ROOT, block))}`);
  }
  say(`done in ${report.run_seconds} s`);
  return reports[0]?.keeps_up ? 0 : 1;
}

void runMain(main);
