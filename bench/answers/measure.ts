// The measurements of bench:answers, one request at a time: search (cache miss, L1 hit, L2-only hit),
// the JSON answer (cold, and the same question again) and the SSE answer (first delta, done). The
// search cache's own counters (GET /metrics) are read around each pass, to show which tier served it.
import { setTimeout as sleep } from "node:timers/promises";
import type { ApiClient } from "../ingest/client.ts";
import { type Query, SOURCE_TYPE } from "../retrieval/dataset.ts";
import { percentile } from "../retrieval/evaluate.ts";

/** L1 keeps an entry for min(TTL, 60 s) (src/cache/multilevel.ts); the L2 pass waits a little longer. */
export const L1_TTL_MS = 60_000;
const L1_EXPIRY_MARGIN_MS = 3_000;
/** A round's first pass stays well inside the 300 s search TTL in Redis, wait and L2 pass included. */
const ROUND_MS = 150_000;
const MAX_ERRORS = 10;

export interface Figures {
  n: number;
  errors: number;
  client_ms: { p50: number; p95: number };
  /** took_ms (search) or latency_ms (answers), as the server reports it. */
  server_ms?: { p50: number; p95: number };
}

/** Latencies of one kind of request, with its failures. */
export class Series {
  readonly client: number[] = [];
  readonly server: number[] = [];
  errors = 0;
  readonly errorSamples: string[] = [];

  readonly label: string;

  constructor(label: string) {
    this.label = label;
  }

  add(clientMs: number, serverMs?: number): void {
    this.client.push(clientMs);
    if (serverMs !== undefined) this.server.push(serverMs);
  }

  fail(what: string): void {
    this.errors++;
    if (this.errorSamples.length < 3) this.errorSamples.push(what.slice(0, 300));
    if (this.errors > MAX_ERRORS) throw new Error(`${this.label} keeps failing: ${this.errorSamples.join(" | ")}`);
  }

  figures(): Figures {
    const summary = (values: number[]) => ({
      p50: round(percentile(values, 50)),
      p95: round(percentile(values, 95)),
    });
    return {
      n: this.client.length,
      errors: this.errors,
      client_ms: summary(this.client),
      ...(this.server.length ? { server_ms: summary(this.server) } : {}),
    };
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;

// ---- the cache's counters -------------------------------------------------------------------------

const COUNTERS = {
  l1_hit: ["voiceassist_cache_lookups_total", { namespace: "search", tier: "l1", outcome: "hit" }],
  l1_miss: ["voiceassist_cache_lookups_total", { namespace: "search", tier: "l1", outcome: "miss" }],
  l2_hit: ["voiceassist_cache_lookups_total", { namespace: "search", tier: "l2", outcome: "hit" }],
  l2_miss: ["voiceassist_cache_lookups_total", { namespace: "search", tier: "l2", outcome: "miss" }],
  l2_error: ["voiceassist_cache_lookups_total", { namespace: "search", tier: "l2", outcome: "error" }],
  loads: ["voiceassist_cache_loads_total", { namespace: "search", outcome: "ok" }],
  embedding_l2_hit: ["voiceassist_cache_lookups_total", { namespace: "embedding", tier: "l2", outcome: "hit" }],
} as const;
export type Counters = Record<keyof typeof COUNTERS, number>;

/** Sum of a counter's samples whose labels include these. */
function counter(exposition: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of exposition.split("\n")) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line.trim());
    if (m?.[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] as string).includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

async function readCounters(client: ApiClient): Promise<Counters> {
  // Metrics reach the aggregator Durable Object after the response: let the last ones land.
  await sleep(1_500);
  const res = await client.call("GET", "/metrics");
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.text.slice(0, 200)}`);
  const out = {} as Counters;
  for (const [key, [name, labels]] of Object.entries(COUNTERS))
    out[key as keyof Counters] = counter(res.text, name, labels);
  return out;
}

const zero = (): Counters => ({
  l1_hit: 0,
  l1_miss: 0,
  l2_hit: 0,
  l2_miss: 0,
  l2_error: 0,
  loads: 0,
  embedding_l2_hit: 0,
});

/** Runs `pass` and adds the counters' change during it to `into`. */
async function counted(client: ApiClient, into: Counters, pass: () => Promise<void>): Promise<void> {
  const before = await readCounters(client);
  await pass();
  const after = await readCounters(client);
  for (const key of Object.keys(into) as (keyof Counters)[]) into[key] += after[key] - before[key];
}

// ---- requests ------------------------------------------------------------------------------------

export interface Settings {
  topK: number;
  /** Whether to measure L2-only hits (needs L2, and waits out the L1 lifetime once per round). */
  l2: boolean;
  deadline: number;
  say: (s: string) => void;
}

const filters = { source_type: SOURCE_TYPE };

async function search(client: ApiClient, query: string, topK: number, into?: Series): Promise<void> {
  const res = await client.call("POST", "/api/kb/search", {
    contentType: "application/json",
    body: JSON.stringify({ query, top_k: topK, mode: "hybrid", filters }),
  });
  if (res.status !== 200) return into?.fail(`${res.status} ${res.text}`);
  const body = res.json as { took_ms: number; retrievers: { vector: { skipped?: string } } };
  if (body.retrievers.vector.skipped) return into?.fail(`vector arm skipped: ${body.retrievers.vector.skipped}`);
  into?.add(res.ms, body.took_ms);
}

export interface AnswerTally {
  answered: number;
  no_sources: number;
  citations: number;
}

async function askJson(client: ApiClient, query: string, into?: Series, tally?: AnswerTally): Promise<void> {
  const res = await client.call("POST", "/api/rag/query", {
    contentType: "application/json",
    body: JSON.stringify({ query, filters }),
  });
  if (res.status !== 200) return into?.fail(`${res.status} ${res.text}`);
  const answer = res.json as { outcome: "answered" | "no_sources"; latency_ms: number; citations: unknown[] };
  into?.add(res.ms, answer.latency_ms);
  if (tally) {
    tally[answer.outcome]++;
    tally.citations += answer.citations.length;
  }
}

/** POST /api/rag/query with stream: true, read event by event: ms to the first delta and to done. */
async function askStream(
  baseUrl: string,
  token: string,
  query: string,
  into?: { firstDelta: Series; done: Series },
): Promise<void> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/api/rag/query`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ query, filters, stream: true }),
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200 || !res.body) return into?.firstDelta.fail(`${res.status} ${await res.text()}`);
  let firstDelta: number | undefined;
  let done: { ms: number; latency_ms: number; first_token_ms: number | null } | undefined;
  let failure: string | undefined;
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true }).replaceAll("\r\n", "\n");
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const event = lines
        .find((l) => l.startsWith("event:"))
        ?.slice(6)
        .trim();
      const data = lines
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart())
        .join("\n");
      if (event === "delta") firstDelta ??= performance.now() - started;
      else if (event === "done") done = { ...JSON.parse(data), ms: performance.now() - started };
      else if (event === "error") failure = data;
    }
  }
  if (failure || firstDelta === undefined || !done)
    return into?.firstDelta.fail(failure ?? "no delta or no done event");
  into?.firstDelta.add(firstDelta, done.first_token_ms ?? undefined);
  into?.done.add(done.ms, done.latency_ms);
}

// ---- passes --------------------------------------------------------------------------------------

export interface SearchResult {
  miss: Series;
  l1: Series;
  l2: Series | null;
  /** Cache counters during the first passes (miss, then the same query at once) and during the L2 passes. */
  counters: { first: Counters; l2: Counters | null };
  rounds: number;
  waited_seconds: number;
}

/**
 * Each query twice in a row (the first computes, the second is served from isolate memory); then, once
 * the L1 lifetime has passed for the whole round, each once more: served by Redis and nothing else.
 */
export async function searchPasses(client: ApiClient, queries: Query[], s: Settings): Promise<SearchResult> {
  const result: SearchResult = {
    miss: new Series("search (miss)"),
    l1: new Series("search (L1 hit)"),
    l2: s.l2 ? new Series("search (L2 hit)") : null,
    counters: { first: zero(), l2: s.l2 ? zero() : null },
    rounds: 0,
    waited_seconds: 0,
  };
  for (let next = 0; next < queries.length; ) {
    const round: Query[] = [];
    let lastFill = 0;
    const roundStart = performance.now();
    await counted(client, result.counters.first, async () => {
      while (next < queries.length && performance.now() - roundStart < ROUND_MS) {
        if (Date.now() > s.deadline) throw new Error("search passes unfinished at the time limit");
        const q = queries[next++] as Query;
        round.push(q);
        await search(client, q.text, s.topK, result.miss);
        lastFill = performance.now();
        await search(client, q.text, s.topK, result.l1);
      }
    });
    result.rounds++;
    s.say(`search: ${next} of ${queries.length} queries asked twice`);
    if (!result.l2 || !result.counters.l2) continue;
    const wait = lastFill + L1_TTL_MS + L1_EXPIRY_MARGIN_MS - performance.now();
    s.say(`waiting ${Math.round(wait / 1000)} s for the L1 entries of ${round.length} queries to expire`);
    result.waited_seconds += Math.max(0, wait) / 1000;
    await sleep(Math.max(0, wait));
    const l2 = result.l2;
    await counted(client, result.counters.l2, async () => {
      for (const q of round) await search(client, q.text, s.topK, l2);
    });
  }
  return result;
}

export interface AnswerResult {
  cold: Series;
  again: Series;
  tally: AnswerTally;
  counters: Counters;
}

/** Each question once (nothing cached for it yet), then again at once (its retrieval now in L1). */
export async function jsonAnswers(client: ApiClient, queries: Query[], s: Settings): Promise<AnswerResult> {
  const result: AnswerResult = {
    cold: new Series("answer JSON (cold)"),
    again: new Series("answer JSON (again)"),
    tally: { answered: 0, no_sources: 0, citations: 0 },
    counters: zero(),
  };
  await counted(client, result.counters, async () => {
    for (const q of queries) {
      if (Date.now() > s.deadline) throw new Error("JSON answers unfinished at the time limit");
      await askJson(client, q.text, result.cold, result.tally);
      await askJson(client, q.text, result.again);
    }
  });
  return result;
}

/** A signed-in request that does next to nothing (the sign-in check and one primary-key read): the floor. */
export async function floorPass(client: ApiClient, n: number, s: Settings): Promise<Series> {
  const floor = new Series("GET /api/auth/me");
  for (let i = 0; i < n && Date.now() <= s.deadline; i++) {
    const res = await client.call("GET", "/api/auth/me");
    if (res.status === 200) floor.add(res.ms);
    else floor.fail(`${res.status} ${res.text}`);
  }
  return floor;
}

export async function streamedAnswers(client: ApiClient, token: string, queries: Query[], s: Settings) {
  const result = { firstDelta: new Series("answer SSE"), done: new Series("answer SSE (done)"), counters: zero() };
  await counted(client, result.counters, async () => {
    for (const q of queries) {
      if (Date.now() > s.deadline) throw new Error("streamed answers unfinished at the time limit");
      await askStream(client.baseUrl, token, q.text, result);
    }
  });
  return result;
}

/** Every request kind on queries that are measured nowhere else, results thrown away. */
export async function warmUp(client: ApiClient, token: string, queries: Query[], topK: number): Promise<void> {
  for (const q of queries) {
    await search(client, q.text, topK);
    await search(client, q.text, topK);
    await askJson(client, q.text);
    await askStream(client.baseUrl, token, `${q.text} (streamed)`);
  }
}
