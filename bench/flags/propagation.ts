// bench:flags, propagation: how soon a flag write reaches clients of the same `npm run dev`. One admin toggles
// one flag back and forth; for each write, from the moment its request is sent:
//   (a) write: the toggle's own round trip (it answers after the FlagHub has written KV and announced it);
//   (b) stream: a client holding GET /api/flags/stream receives the `change` event naming the flag;
//   (c) poll: a client sending POST /api/flags/evaluate in a loop (~5 ms apart) first gets the new flag
//       version with the new value.
// All three clients run in this process over loopback keep-alive connections, each its own. Locally there is
// one isolate and KV is local: another isolate's delay (FLAGS_CACHE_TTL_SECONDS + KV propagation) is not
// measured here (docs/flags.md, "Caching and propagation").
import { Agent, type ClientRequest, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { percentile } from "../ingest/summary.ts";
import { exchange } from "./load.ts";

export interface Spread {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

export interface PropagationReport {
  flag: string;
  /** Rule set the flag was toggled in (the snapshot every write republishes). */
  flags_in_rule_set: number;
  writes: number;
  warm_up_writes: number;
  poll_interval_ms: number;
  /** ms from sending the toggle: its response, the stream's change event, the poller's first new answer. */
  write_ms: Spread;
  stream_ms: Spread;
  poll_ms: Spread;
  /** Writes whose change the stream (or the poller) had seen before the write's own response came. */
  stream_before_response: number;
  poll_before_response: number;
  /** Writes one of the observers did not see within the wait (left out of its figures). */
  missed: { stream: number; poll: number };
  /** The poller's own requests during the writes: how many, and their round trip (its resolution). */
  polls: number;
  poll_round_trip_ms: Spread;
  /** Per write, in order (ms; null when missed). */
  samples: { write: number; stream: number | null; poll: number | null }[];
}

export interface PropagationOptions {
  /** http://127.0.0.1:<port> of npm run dev. */
  base: string;
  /** An admin's access token (the writer). */
  adminToken: string;
  /** Access tokens of the stream's client and the poller (signed-in users; may be the same). */
  streamToken: string;
  pollToken: string;
  /** The flag toggled: created (off, default strategy) when missing. */
  flag: string;
  writes: number;
  warmUpWrites: number;
  pollIntervalMs: number;
  /** Pause after both observers saw a write, before the next. */
  gapMs: number;
  /** How long to wait for the observers after a write. */
  waitMs: number;
  say: (line: string) => void;
}

/** A request with the bench's bearer token (and a JSON body, when given). */
function send(agent: Agent, base: string, method: string, path: string, token: string, body?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  return exchange(agent, base, { method, path, headers, body }, 30_000);
}

/** A client holding GET /api/flags/stream: every `change` event, with the time it arrived. */
function openStream(base: string, token: string, flag: string) {
  const changes: { at: number; version: number }[] = [];
  let request_: ClientRequest | undefined;
  const opened = new Promise<void>((resolve, reject) => {
    const url = new URL("/api/flags/stream", base);
    request_ = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET /api/flags/stream: ${res.statusCode}`));
          res.resume();
          return;
        }
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          const at = performance.now();
          buffered += chunk;
          for (let end = buffered.indexOf("\n\n"); end >= 0; end = buffered.indexOf("\n\n")) {
            const frame = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            const event = /^event: (.*)$/m.exec(frame)?.[1];
            const data = /^data: (.*)$/m.exec(frame)?.[1];
            if (event === "hello" || event === "reset") resolve();
            if (event !== "change" || !data) continue;
            const change = JSON.parse(data) as { version: number; changes: { key: string }[] };
            if (change.changes.some((c) => c.key === flag)) changes.push({ at, version: change.version });
          }
        });
        res.on("error", reject);
      },
    );
    request_.on("error", reject);
    request_.end();
  });
  return { opened, changes, close: () => request_?.destroy() };
}

/** A client evaluating every flag again and again: what it saw of the flag, and when. */
function startPoller(base: string, token: string, flag: string, intervalMs: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const seen: { at: number; flagVersion: number; enabled: boolean; roundTrip: number }[] = [];
  const errors: string[] = [];
  let failure: string | undefined;
  let running = true;
  let flagCount = 0;
  const body = JSON.stringify({ context: {} });
  const loop = (async () => {
    while (running) {
      try {
        const reply = await send(agent, base, "POST", "/api/flags/evaluate", token, body);
        if (reply.status !== 200)
          throw new Error(`POST /api/flags/evaluate: ${reply.status} ${reply.body.slice(0, 200)}`);
        const { flags } = JSON.parse(reply.body) as { flags: Record<string, { enabled: boolean; version: number }> };
        const answer = flags[flag];
        flagCount = Object.keys(flags).length;
        if (!answer) throw new Error(`POST /api/flags/evaluate: no ${flag} in the answer`);
        seen.push({
          at: reply.receivedAt,
          flagVersion: answer.version,
          enabled: answer.enabled,
          roundTrip: reply.receivedAt - reply.sentAt,
        });
      } catch (error) {
        errors.push((error as Error).message);
        if (errors.length >= 20) {
          failure = `the poller failed ${errors.length} times: ${errors.slice(-3).join("; ")}`;
          running = false;
        }
      }
      await sleep(intervalMs);
    }
  })();
  return {
    seen,
    flagCount: () => flagCount,
    failure: () => failure,
    stop: async () => {
      running = false;
      await loop;
      agent.destroy();
    },
  };
}

function firstFrom<T>(list: T[], from: number, test: (item: T) => boolean): T | undefined {
  for (let i = from; i < list.length; i++) if (test(list[i] as T)) return list[i];
  return undefined;
}

const flagPath = (key: string) => `/api/admin/flags/${encodeURIComponent(key)}`;

const spread = (values: number[]): Spread => {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    max: round(sorted.at(-1) ?? Number.NaN),
  };
};

/** Toggles `flag` `writes` times (after a few unmeasured ones) and times what each observer saw. */
export async function measurePropagation(o: PropagationOptions): Promise<PropagationReport> {
  const admin = new Agent({ keepAlive: true, maxSockets: 1 });
  const path = flagPath(o.flag);
  let enabled = await ensureFlag(admin, o);
  const stream = openStream(o.base, o.streamToken, o.flag);
  const poller = startPoller(o.base, o.pollToken, o.flag, o.pollIntervalMs);
  const samples: PropagationReport["samples"] = [];
  let streamFirst = 0;
  let pollFirst = 0;
  let pollsFrom = 0;
  try {
    const noHello = sleep(10_000, undefined, { ref: false }).then(() => Promise.reject(new Error("no hello in 10 s")));
    await Promise.race([stream.opened, noHello]);
    let streamVersion = 0;
    for (let i = 0; i < o.warmUpWrites + o.writes; i++) {
      if (i === o.warmUpWrites) pollsFrom = poller.seen.length;
      const pollFrom = poller.seen.length;
      enabled = !enabled;
      const reply = await send(admin, o.base, "POST", `${path}/toggle`, o.adminToken, JSON.stringify({ enabled }));
      if (reply.status !== 200) throw new Error(`POST ${path}/toggle: ${reply.status} ${reply.body.slice(0, 300)}`);
      const t0 = reply.sentAt;
      const flagVersion = (JSON.parse(reply.body) as { version: number }).version;
      // The stream: the next change event naming the flag. The poller: the first answer with the flag's new
      // version (a request sent before t0 counts when its answer came after: that is what the client saw).
      const until = performance.now() + o.waitMs;
      let streamAt: number | undefined;
      let pollAt: number | undefined;
      while ((streamAt === undefined || pollAt === undefined) && performance.now() < until) {
        const change = stream.changes.find((c) => c.version > streamVersion);
        if (change && streamAt === undefined) [streamAt, streamVersion] = [change.at, change.version];
        const seen = firstFrom(poller.seen, pollFrom, (s) => s.flagVersion >= flagVersion);
        if (seen && seen.enabled !== enabled) {
          throw new Error(`the poller got ${o.flag} at version ${seen.flagVersion} ${seen.enabled ? "on" : "off"}`);
        }
        pollAt ??= seen?.at;
        const failure = poller.failure();
        if (failure) throw new Error(failure);
        if (streamAt === undefined || pollAt === undefined) await sleep(1);
      }
      if (i >= o.warmUpWrites) {
        samples.push({
          write: reply.receivedAt - t0,
          stream: streamAt === undefined ? null : streamAt - t0,
          poll: pollAt === undefined ? null : pollAt - t0,
        });
        if (streamAt !== undefined && streamAt < reply.receivedAt) streamFirst++;
        if (pollAt !== undefined && pollAt < reply.receivedAt) pollFirst++;
      }
      await sleep(o.gapMs * (1 + Math.random())); // a random phase against the poller's loop
    }
  } finally {
    stream.close();
    await poller.stop().catch(() => undefined);
    admin.destroy();
  }
  const polls = poller.seen.slice(pollsFrom);
  const figures = {
    write: spread(samples.map((s) => s.write)),
    stream: spread(samples.flatMap((s) => (s.stream === null ? [] : [s.stream]))),
    poll: spread(samples.flatMap((s) => (s.poll === null ? [] : [s.poll]))),
  };
  o.say(
    `propagation: ${samples.length} writes; p50 write ${figures.write.p50} ms, stream ${figures.stream.p50} ms, poll ${figures.poll.p50} ms (${polls.length} polls)`,
  );
  const round = (n: number | null) => (n === null ? null : Math.round(n * 100) / 100);
  return {
    flag: o.flag,
    flags_in_rule_set: poller.flagCount(),
    writes: samples.length,
    warm_up_writes: o.warmUpWrites,
    poll_interval_ms: o.pollIntervalMs,
    write_ms: figures.write,
    stream_ms: figures.stream,
    poll_ms: figures.poll,
    stream_before_response: streamFirst,
    poll_before_response: pollFirst,
    missed: { stream: samples.length - figures.stream.n, poll: samples.length - figures.poll.n },
    polls: polls.length,
    poll_round_trip_ms: spread(polls.map((p) => p.roundTrip)),
    samples: samples.map((s) => ({ write: round(s.write) as number, stream: round(s.stream), poll: round(s.poll) })),
  };
}

/** Creates the flag (off, default strategy) unless it exists; returns whether it is on. */
async function ensureFlag(admin: Agent, o: PropagationOptions): Promise<boolean> {
  const path = flagPath(o.flag);
  const existing = await send(admin, o.base, "GET", path, o.adminToken);
  if (existing.status === 200) return (JSON.parse(existing.body) as { enabled: boolean }).enabled;
  if (existing.status !== 404) throw new Error(`GET ${path}: ${existing.status} ${existing.body.slice(0, 300)}`);
  const flag = {
    key: o.flag,
    description: "bench:flags propagation: toggled back and forth",
    enabled: false,
    strategies: [{ name: "default" }],
  };
  const created = await send(admin, o.base, "POST", "/api/admin/flags", o.adminToken, JSON.stringify(flag));
  if (created.status !== 201) throw new Error(`POST /api/admin/flags: ${created.status} ${created.body.slice(0, 300)}`);
  return false;
}
