// Where a request's time goes inside the Worker under `npm run dev`: a V8 CPU profile of the Worker's isolate,
// taken through workerd's inspector (found among its listening sockets, via /proc) while the load
// generator drives POST /api/flags/evaluate, then every sample attributed to the innermost stage of the request
// path it was in (the evaluation, sign-in, metrics, framework …) by the source file of its frame in the bundle.
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import type { ProcessInfo } from "../ingest/proc.ts";
import { type LoadResult, type LoadTarget, runLoad } from "./load.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface StageShare {
  stage: string;
  /** Share of the isolate's busy (non-idle) samples. */
  busy_pct: number;
  /** Busy milliseconds per request (wall time of the isolate's thread, so it includes time descheduled). */
  ms_per_request: number;
}

export interface WorkerProfile {
  load: LoadResult;
  sampled_seconds: number;
  idle_pct: number;
  stages: StageShare[];
  /** The functions with the most self time (builtins they call, such as JSON.stringify, count as theirs). */
  hotspots: { fn: string; file: string; stage: string; ms_per_request: number }[];
  /** CPU milliseconds per request by process role during the profiled load. */
  cpu_ms_per_request: Record<string, number>;
}

/** The bundle's module markers ("// src/flags/evaluate.ts") by line, to name a frame's source file. */
function moduleIndex(bundle: string): (line: number) => string {
  const markers: [number, string][] = [];
  bundle.split("\n").forEach((text, i) => {
    const m = /^\/\/ ((?:src|workers|node_modules|\.\.\/)\S*)$/.exec(text);
    if (m) markers.push([i, m[1] as string]);
  });
  return (line) => {
    let lo = 0;
    let hi = markers.length - 1;
    let found = "?";
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [at, file] = markers[mid] as [number, string];
      if (at <= line) {
        found = file;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  };
}

type Frame = { fn: string; file: string };

// Checked from the sampled frame outwards; the first stage whose test matches a frame takes the sample.
const STAGES: [string, (f: Frame) => boolean][] = [
  ["(idle: waiting for I/O)", (f) => f.fn === "(idle)"],
  ["garbage collection", (f) => f.fn === "(garbage collector)"],
  ["V8 / workerd, unattributed", (f) => f.fn === "(program)"],
  [
    "flags: evaluateAll (the evaluation itself)",
    (f) => /src\/flags\/(evaluate|strategies|constraints|variants|murmur|regex|ip)\.ts/.test(f.file),
  ],
  ["flags: exposures (sampled)", (f) => /src\/flags\/exposures/.test(f.file)],
  ["flags: rule set from memory", (f) => /src\/flags\/(snapshot-cache|request|publish)\.ts/.test(f.file)],
  ["metrics: MetricsAggregator Durable Object (SQLite)", (f) => /workers\/metrics-aggregator/.test(f.file)],
  ["metrics: recordMetrics, Analytics Engine", (f) => /src\/metrics\/|src\/middleware\/metrics/.test(f.file)],
  ["other Durable Objects", (f) => /^workers\//.test(f.file)],
  [
    "sign-in: revocation check (Upstash REST)",
    (f) => /@upstash\/redis|src\/auth\/revocation|src\/cache\/redis/.test(f.file),
  ],
  ["sign-in: user + session query (drizzle, Neon driver)", (f) => /drizzle-orm|@neondatabase|src\/db/.test(f.file)],
  ["sign-in: JWT, principal, activity", (f) => /src\/auth\/|src\/middleware\/auth/.test(f.file)],
  ["request id, trace context", (f) => /src\/observability\/trace|src\/middleware\/request-context/.test(f.file)],
  ["request log", (f) => /src\/observability\/log|src\/middleware\/request-log/.test(f.file)],
  [
    "config, body limits, security headers, CORS, errors",
    (f) => /src\/middleware\/|src\/config\.ts|src\/env\.ts/.test(f.file),
  ],
  ["zod (request validation)", (f) => /node_modules\/zod|zod-openapi/.test(f.file)],
  ["hono (routing, middleware chain, c.json serialisation)", (f) => /node_modules\/hono/.test(f.file)],
  ["wrangler's dev middleware", (f) => /node_modules\/wrangler/.test(f.file)],
];
const UNMATCHED = "native calls from elsewhere (fetch, Response, crypto …)";

export function stagesOf(profile: CpuProfile, bundle: string, requests: number) {
  const fileAt = moduleIndex(bundle);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const frame = (n: ProfileNode): Frame => ({
    fn: n.callFrame.functionName || "(anonymous)",
    file: n.callFrame.url === "index.js" ? fileAt(n.callFrame.lineNumber) : n.callFrame.url || "(native)",
  });
  const stageOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = stageOf.get(id);
    if (known) return known;
    let stage = UNMATCHED;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const hit = STAGES.find(([, test]) => test(frame(byId.get(cur as number) as ProfileNode)));
      if (hit) {
        stage = hit[0];
        break;
      }
    }
    stageOf.set(id, stage);
    return stage;
  };
  const time = new Map<string, number>();
  const selfTime = new Map<string, { fn: string; file: string; stage: string; us: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const stage = classify(id);
    time.set(stage, (time.get(stage) ?? 0) + dt);
    const f = frame(byId.get(id) as ProfileNode);
    if (f.fn.startsWith("(")) return;
    // esbuild's __name helper sits before the first module marker: name it after what it is.
    const file = f.fn === "__name" ? "esbuild keepNames helper (bundle prelude)" : f.file;
    const key = `${f.fn}\u0000${file}`;
    const entry = selfTime.get(key) ?? { fn: f.fn, file, stage, us: 0 };
    entry.us += dt;
    selfTime.set(key, entry);
  });
  const idle = time.get(STAGES[0]?.[0] as string) ?? 0;
  const busy = Math.max(1, total - idle);
  const stages = [...time]
    .filter(([stage]) => stage !== STAGES[0]?.[0])
    .sort((a, b) => b[1] - a[1])
    .map(([stage, us]) => ({
      stage,
      busy_pct: Math.round((1000 * us) / busy) / 10,
      ms_per_request: Math.round((100 * us) / 1000 / Math.max(1, requests)) / 100,
    }));
  const hotspots = [...selfTime.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, 15)
    .map(({ fn, file, stage, us }) => ({
      fn,
      file,
      stage,
      ms_per_request: Math.round((1000 * us) / 1000 / Math.max(1, requests)) / 1000,
    }));
  return {
    sampled_seconds: total / 1e6,
    idle_pct: Math.round((1000 * idle) / Math.max(1, total)) / 10,
    stages,
    hotspots,
  };
}

/** TCP ports a process listens on (from /proc: its socket inodes matched against /proc/net/tcp). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address rem_address st ... inode (10th column); st 0A = LISTEN
      if (cols[3] === "0A" && inodes.has(cols[9] as string))
        ports.push(Number.parseInt((cols[1] as string).split(":")[1] as string, 16));
    }
  }
  return ports;
}

/**
 * The Worker's inspector, as wrangler proxies it (port 9229 when free, else another one, served by the proxy's
 * workerd and listed by GET /json); workerd's own inspector (`core:user:<name>`) is the fallback.
 */
async function findInspector(processes: ProcessInfo[]): Promise<{ ws: string; cwd: string }> {
  const wrangler = processes.find((p) => /wrangler-dist\/cli\.js/.test(p.command));
  if (!wrangler) throw new Error("no wrangler process in npm run dev's tree");
  const cwd = readlinkSync(`/proc/${wrangler.pid}/cwd`);
  const found: { ws: string; id: string }[] = [];
  for (const p of processes.filter((q) => /workerd/.test(q.command))) {
    for (const port of listeningPorts(p.pid)) {
      const targets = await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => (r.ok ? (r.json() as Promise<{ id?: string; webSocketDebuggerUrl?: string }[]>) : []))
        .catch(() => []);
      if (!Array.isArray(targets)) continue;
      for (const t of targets) if (t.webSocketDebuggerUrl) found.push({ ws: t.webSocketDebuggerUrl, id: t.id ?? "" });
    }
  }
  // workerd's own inspector takes one client, and wrangler's inspector proxy already is that client: the
  // proxy's endpoint (…/ws) is the one that answers.
  const worker =
    found.find((t) => t.ws.endsWith("/ws")) ??
    found.find((t) => t.id.startsWith("core:user:") && !t.id.startsWith("core:user:__")) ??
    found[0];
  if (!worker) throw new Error("no inspector answered GET /json on the ports of npm run dev's workerd processes");
  return { ws: worker.ws, cwd };
}

/** The newest bundle wrangler built for the Worker (its dev build directory). */
function newestBundle(cwd: string): string {
  const root = join(cwd, ".wrangler", "tmp");
  const candidates = readdirSync(root)
    .filter((d) => d.startsWith("dev-"))
    .map((d) => join(root, d, "index.js"))
    .filter((f) => {
      try {
        return statSync(f).isFile();
      } catch {
        return false;
      }
    })
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!candidates[0]) throw new Error(`no Worker bundle under ${root}`);
  return readFileSync(candidates[0], "utf8");
}

/** Profiles the Worker isolate while `target` is loaded at `concurrency` for `seconds`. */
export async function profileWorker(
  processes: () => { role: string; info: ProcessInfo }[],
  target: LoadTarget,
  options: { concurrency: number; seconds: number },
): Promise<WorkerProfile> {
  const inspector = await findInspector(processes().map((p) => p.info));
  const ws = new WebSocket(inspector.ws);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  try {
    let next = 0;
    const pending = new Map<number, (result: unknown) => void>();
    ws.on("message", (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
      if (message.id !== undefined) pending.get(message.id)?.(message.result);
    });
    const send = (method: string, params: object = {}) =>
      new Promise<unknown>((resolve, reject) => {
        const id = ++next;
        const timer = setTimeout(() => reject(new Error(`inspector: ${method} unanswered`)), 30_000);
        pending.set(id, (result) => {
          clearTimeout(timer);
          pending.delete(id);
          resolve(result);
        });
        ws.send(JSON.stringify({ id, method, params }));
      });
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: 250 });
    const before = new Map(processes().map((p) => [p.info.pid, p.info.cpuSeconds]));
    await send("Profiler.start");
    const load = await runLoad(target, {
      concurrency: options.concurrency,
      seconds: options.seconds,
      warmUpSeconds: 0,
    });
    const { profile } = (await send("Profiler.stop")) as { profile: CpuProfile };
    const cpu: Record<string, number> = {};
    for (const { role, info } of processes()) {
      cpu[role] = (cpu[role] ?? 0) + info.cpuSeconds - (before.get(info.pid) ?? 0);
    }
    const requests = Math.max(1, load.ok);
    const stages = stagesOf(profile, newestBundle(inspector.cwd), requests);
    return {
      load,
      ...stages,
      cpu_ms_per_request: Object.fromEntries(
        Object.entries(cpu)
          .filter(([, s]) => s > 0)
          .map(([role, s]) => [role, Math.round((100 * s * 1000) / requests) / 100]),
      ),
    };
  } finally {
    ws.close();
  }
}
