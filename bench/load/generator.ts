// The bench:load generator: bench:flags' closed loop (a fixed number of keep-alive connections, each sending its
// next request as soon as the last one is answered; bench/flags/load.ts's `exchange`), generalised to what these
// scenarios need: any method and path per request, every status counted (2xx is success, as uploads answer 202),
// latency of every answer, and a stop on whichever comes first of the time and the end of the scenario's
// requests (uploads have a fixed set of distinct documents). Loopback only.
import { Agent } from "node:http";
import { exchange } from "../flags/load.ts";
import { percentile } from "../ingest/summary.ts";

export interface LoadRequest {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface Scenario {
  /** Short name, e.g. "sign-in". */
  name: string;
  /** "POST /api/auth/login". */
  route: string;
  /** What the requests are, for the report. */
  what: string;
  connections: number;
  /** Distinct requests the scenario has; request i is requests[i % length] unless `once` is set. */
  requests: LoadRequest[];
  /** Each request at most once (distinct uploads): the scenario ends when they run out. */
  once?: boolean;
  /** Answers to repeated requests may come from a cache (search, answers): say when requests repeat. */
  cached?: boolean;
}

export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface ScenarioResult {
  name: string;
  route: string;
  what: string;
  connections: number;
  /** Seconds measured: the window, or less when the requests ran out first. */
  seconds: number;
  stopped_by: "time" | "requests";
  /** Answered or failed inside the measured window. */
  requests: number;
  /** All requests per second, and successful (2xx) ones. */
  rps: number;
  ok_rps: number;
  /** Counts by status ("error" for no answer: refused, reset, timed out). */
  statuses: Record<string, number>;
  /** Share of requests that were not 2xx, overall and by status. */
  non_2xx_share: number;
  non_2xx_by_status: Record<string, number>;
  /** Every answer, whatever its status (transport errors have none). */
  latency_ms: Latency;
  /** 2xx answers only (empty when there were none). */
  latency_2xx_ms: Latency | null;
  /** Whether a `cached` scenario went round its requests more than once (caches may answer the repeats). */
  repeated: boolean;
  /** Up to 5 distinct non-2xx answers or errors, cut to 200 characters. */
  samples: string[];
}

const LOOPBACK = /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/;
const round = (n: number) => Math.round(n * 100) / 100;

function latencyOf(values: number[]): Latency | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] as number),
  };
}

/**
 * Runs the scenario: `warmUpSeconds` unmeasured, then at most `seconds` measured. A request counts when it
 * completes inside the measured window, whenever it started; after the window no new request starts.
 */
export async function runScenario(
  base: string,
  scenario: Scenario,
  /** `drain`: requests sent inside the window count when they complete after it (a smoke run's 1 s). */
  options: { seconds: number; warmUpSeconds: number; timeoutMs: number; drain?: boolean },
): Promise<ScenarioResult> {
  if (!LOOPBACK.test(base)) throw new Error(`load goes to loopback addresses only, not ${base}`);
  if (scenario.requests.length === 0) throw new Error(`${scenario.name}: no requests`);
  const agent = new Agent({ keepAlive: true, maxSockets: scenario.connections });
  const all: number[] = [];
  const ok: number[] = [];
  const statuses: Record<string, number> = {};
  const samples: string[] = [];
  let next = 0;
  let lastAt = 0;
  const measureFrom = performance.now() + options.warmUpSeconds * 1000;
  const stopAt = measureFrom + options.seconds * 1000;
  const inWindow = (t: number) => t >= measureFrom && (options.drain === true || t < stopAt);
  const sample = (line: string) => {
    const cut = line.slice(0, 200);
    if (samples.length < 5 && !samples.includes(cut)) samples.push(cut);
  };
  const connection = async () => {
    while (performance.now() < stopAt) {
      const i = next++;
      if (scenario.once && i >= scenario.requests.length) return;
      const spec = scenario.requests[i % scenario.requests.length] as LoadRequest;
      try {
        const reply = await exchange(agent, base, spec, options.timeoutMs);
        if (!inWindow(reply.receivedAt)) continue;
        lastAt = reply.receivedAt;
        const ms = reply.receivedAt - reply.sentAt;
        statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
        all.push(ms);
        if (reply.status >= 200 && reply.status < 300) ok.push(ms);
        else sample(`${reply.status} ${reply.body}`);
      } catch (error) {
        const at = performance.now();
        if (!inWindow(at)) continue;
        lastAt = at;
        statuses.error = (statuses.error ?? 0) + 1;
        sample(`error ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: scenario.connections }, connection));
  agent.destroy();

  const ranOut = scenario.once === true && next >= scenario.requests.length && performance.now() < stopAt;
  const seconds =
    ranOut || options.drain
      ? Math.max(0.001, (lastAt - measureFrom) / 1000, ranOut ? 0 : options.seconds)
      : options.seconds;
  const requests = Object.values(statuses).reduce((a, b) => a + b, 0);
  const non2xx = Object.fromEntries(
    Object.entries(statuses)
      .filter(([status]) => !/^2\d\d$/.test(status))
      .map(([status, n]) => [status, round((n / requests) * 10_000) / 10_000]),
  );
  return {
    name: scenario.name,
    route: scenario.route,
    what: scenario.what,
    connections: scenario.connections,
    seconds: round(seconds),
    stopped_by: ranOut ? "requests" : "time",
    requests,
    rps: round(requests / seconds),
    ok_rps: round(ok.length / seconds),
    statuses,
    non_2xx_share: requests ? round(((requests - ok.length) / requests) * 10_000) / 10_000 : 0,
    non_2xx_by_status: non2xx,
    latency_ms: latencyOf(all) ?? { p50: Number.NaN, p95: Number.NaN, p99: Number.NaN, max: Number.NaN },
    latency_2xx_ms: latencyOf(ok),
    repeated: scenario.cached === true && next > scenario.requests.length,
    samples,
  };
}
