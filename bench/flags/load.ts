// The bench:flags load generator, the same for every target: a fixed number of workers, each with its own
// keep-alive connection, sending one request after another (closed loop) for a fixed time, then stopping by
// itself. Loopback only. Latency is from writing the request to the last byte of the response.
import { Agent, request } from "node:http";
import { percentile } from "../ingest/summary.ts";

export interface LoadTarget {
  label: string;
  /** http://127.0.0.1:<port> (the generator refuses anything but loopback). */
  base: string;
  method: "GET" | "POST";
  path: string;
  /** Request i's headers and body (bodies are prepared up front, so the client does no JSON work while timing). */
  requests: { headers: Record<string, string>; body?: string }[];
  /** Checks a 200's body once in a while (the first response of each worker); returns a problem or undefined. */
  check?: (body: string) => string | undefined;
}

export interface LoadResult {
  label: string;
  concurrency: number;
  seconds: number;
  requests: number;
  ok: number;
  errors: number;
  statuses: Record<string, number>;
  error_samples: string[];
  /** Successful requests per second over the measured window. */
  rps: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number; mean: number };
  /** Mean response body size. */
  bytes: number;
  client_cpu_pct: number;
}

const LOOPBACK = /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/;

/** One request and its whole answer; times are performance.now() at sending and at the last byte. */
export interface Exchange {
  status: number;
  body: string;
  sentAt: number;
  receivedAt: number;
}

/** Sends one request over `agent` (loopback or not: the callers check) and reads the whole answer. */
export function exchange(
  agent: Agent,
  base: string,
  spec: { method: string; path: string; headers: Record<string, string>; body?: string | undefined },
  timeoutMs: number,
): Promise<Exchange> {
  const url = new URL(spec.path, base);
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: spec.method,
        headers:
          spec.body === undefined ? spec.headers : { ...spec.headers, "content-length": Buffer.byteLength(spec.body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            sentAt,
            receivedAt: performance.now(),
          }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(spec.body);
  });
}

async function once(
  agent: Agent,
  target: LoadTarget,
  i: number,
  timeoutMs: number,
): Promise<{ status: number; body: string; ms: number }> {
  const spec = target.requests[i % target.requests.length] as LoadTarget["requests"][number];
  const reply = await exchange(agent, target.base, { ...spec, method: target.method, path: target.path }, timeoutMs);
  return { status: reply.status, body: reply.body, ms: reply.receivedAt - reply.sentAt };
}

/**
 * Runs `concurrency` closed-loop workers against the target: `warmUpSeconds` unmeasured, then `seconds`
 * measured. Workers stop sending at the end of the window; what completes after it is not counted.
 */
export async function runLoad(
  target: LoadTarget,
  options: { concurrency: number; seconds: number; warmUpSeconds: number; timeoutMs?: number },
): Promise<LoadResult> {
  if (!LOOPBACK.test(target.base)) throw new Error(`load goes to loopback addresses only, not ${target.base}`);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const samples: string[] = [];
  let bytes = 0;
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const measureFrom = start + options.warmUpSeconds * 1000;
  const stopAt = measureFrom + options.seconds * 1000;
  let cpu: NodeJS.CpuUsage | undefined;
  const sample = (line: string) => {
    if (samples.length < 5 && !samples.includes(line)) samples.push(line);
  };
  // A request counts when it completes inside the window [measureFrom, stopAt), whenever it started.
  const inWindow = (t: number) => t >= measureFrom && t < stopAt;
  const cpuTimer = setTimeout(() => {
    cpu = process.cpuUsage();
  }, measureFrom - performance.now());
  const worker = async () => {
    let first = true;
    while (performance.now() < stopAt) {
      const i = next++;
      try {
        const res = await once(agent, target, i, timeoutMs);
        if (first && res.status === 200 && target.check) {
          const problem = target.check(res.body);
          if (problem) sample(`bad body: ${problem}`);
        }
        first = false;
        if (!inWindow(performance.now())) continue;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status === 200) {
          latencies.push(res.ms);
          bytes += res.body.length;
        } else {
          errors++;
          sample(`${res.status} ${res.body.slice(0, 200)}`);
        }
      } catch (error) {
        if (!inWindow(performance.now())) continue;
        errors++;
        statuses.error = (statuses.error ?? 0) + 1;
        sample((error as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  clearTimeout(cpuTimer);
  const used = process.cpuUsage(cpu);
  agent.destroy();
  const window = options.seconds;
  const sorted = latencies.sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    label: target.label,
    concurrency: options.concurrency,
    seconds: window,
    requests: sorted.length + errors,
    ok: sorted.length,
    errors,
    statuses,
    error_samples: samples,
    rps: round(sorted.length / window),
    latency_ms: {
      p50: round(percentile(sorted, 50)),
      p95: round(percentile(sorted, 95)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted[sorted.length - 1] ?? Number.NaN),
      mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
    },
    bytes: Math.round(bytes / Math.max(1, sorted.length)),
    client_cpu_pct: Math.round(((used.user + used.system) / 1e6 / window) * 100),
  };
}

/** One request, for set-up and the agreement check. */
export async function single(target: LoadTarget, i: number): Promise<{ status: number; body: string; ms: number }> {
  const agent = new Agent({ keepAlive: false });
  try {
    return await once(agent, target, i, 30_000);
  } finally {
    agent.destroy();
  }
}
