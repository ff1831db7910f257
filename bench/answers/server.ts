// The server under test for bench:answers: a fresh `npm run dev -- --reset` in a private copy of the
// working tree (bench/ingest/dev-server.ts), or a running one (--url); an admin session; the SciFact
// subset imported through POST /api/admin/kb/import and waited for.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { ApiClient } from "../ingest/client.ts";
import { importBodies } from "../ingest/corpus.ts";
import { createSnapshot, readLog, type SnapshotSource, startDevServer } from "../ingest/dev-server.ts";
import type { ProcessInfo } from "../ingest/proc.ts";
import type { ImportRecord } from "../retrieval/dataset.ts";

const REQUEST_TIMEOUT_MS = 30_000;
const IMPORT_TIMEOUT_MS = 10 * 60_000;
const IMPORT_MAX_BYTES = 50 * 1024 * 1024; // KB_MAX_IMPORT_BYTES default
const PER_IMPORT = 1_000;
const REDIS_BASE = "redis://127.0.0.1:6379";

export interface Target {
  client: ApiClient;
  admin: { email: string; password: string };
  /** What the server is, for the report. */
  description: string;
  /** Whether the L2 tier (Redis behind the local Upstash server) is on, and where, as far as we know. */
  l2: { on: boolean | "unknown"; note: string };
  /** The server's processes, when this run started it (to tell its CPU time from other people's). */
  processes?: () => ProcessInfo[];
}

type Defer = (step: () => Promise<unknown>) => void;

/**
 * A Redis logical database that is empty now, so that no earlier run's cached embeddings or search
 * results (Redis is shared on this machine) can turn a first search into a hit; emptied again on the way out.
 */
async function privateRedisDb(defer: Defer): Promise<{ url: string; note: string } | undefined> {
  for (let db = 1; db < 16; db++) {
    const redis = new Redis(`${REDIS_BASE}/${db}`, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
    });
    redis.on("error", () => {});
    let kept = false;
    try {
      await redis.connect();
      if ((await redis.dbsize()) > 0) continue;
      kept = true;
      defer(async () => {
        const keys: string[] = [];
        for await (const page of redis.scanStream({ match: "va:*", count: 500 })) keys.push(...(page as string[]));
        if (keys.length) await redis.unlink(...keys);
        redis.disconnect();
      });
      return { url: `${REDIS_BASE}/${db}`, note: `Redis database ${db} of ${REDIS_BASE}, empty at the start` };
    } catch {
      return undefined; // no Redis here: npm run dev runs with L2 off and says so
    } finally {
      if (!kept) redis.disconnect();
    }
  }
  return undefined;
}

export async function freshTarget(
  root: string,
  source: SnapshotSource,
  port: number,
  logFile: string,
  defer: Defer,
  say: (s: string) => void,
) {
  const snapshot = await createSnapshot(root, source);
  defer(() => snapshot.remove());
  const token = randomBytes(24).toString("base64url");
  const env: Record<string, string> = { ADMIN_BOOTSTRAP_TOKEN: token, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" };
  const redisDb = process.env.REDIS_URL ? undefined : await privateRedisDb(defer);
  if (redisDb) env.REDIS_URL = redisDb.url;
  say(
    `starting npm run dev -- --reset in ${snapshot.dir} (a copy of ${source === "head" ? "HEAD" : "the working tree"}) on port ${port}${redisDb ? ` with ${redisDb.note}` : ""}`,
  );
  const server = await startDevServer({ root: snapshot.dir, port, env, logFile, startTimeoutMs: 180_000 });
  defer(async () => {
    const { leftovers } = await server.stop();
    say(`stopped npm run dev (process group ${server.pid})`);
    if (leftovers.length) console.error(`still running after stop: ${leftovers.join(" ")}`);
  });
  // scripts/local-stack prints "Upstash REST <url> over <redis>" when Redis answered, else "...: L2 cache is off".
  const log = await readLog(logFile);
  const upstash = /Upstash REST \S+ over (\S+)/.exec(log);
  const l2 = upstash
    ? { on: true as const, note: `L2 on: npm run dev's Upstash server over ${redisDb ? redisDb.note : upstash[1]}` }
    : {
        on: false as const,
        note: `L2 off (${/! (.*L2 cache is off)/.exec(log)?.[1] ?? "no Upstash server in the dev log"})`,
      };
  const client = new ApiClient(server.url, REQUEST_TIMEOUT_MS);
  const admin = { email: "bench-admin@voiceassist.test", password: randomBytes(18).toString("base64url") };
  await client.bootstrap(token, { ...admin, full_name: "Benchmark Admin" });
  await client.login(admin.email, admin.password);
  const changed = source === "head" ? "" : ` + the working tree (${snapshot.changes.length} changed files)`;
  return {
    target: {
      client,
      admin,
      description: "npm run dev -- --reset (PGlite + pgvector, local embedder and composer)",
      l2,
      processes: server.tree,
    },
    commit: `${snapshot.commit}${changed}`,
  };
}

export async function existingTarget(url: string): Promise<Target> {
  const email = process.env.BENCH_ADMIN_EMAIL;
  const password = process.env.BENCH_ADMIN_PASSWORD;
  if (!email || !password) throw new Error("--url needs BENCH_ADMIN_EMAIL and BENCH_ADMIN_PASSWORD");
  const client = new ApiClient(url.replace(/\/$/, ""), REQUEST_TIMEOUT_MS);
  if (process.env.ADMIN_BOOTSTRAP_TOKEN) {
    await client.bootstrap(process.env.ADMIN_BOOTSTRAP_TOKEN, { email, password, full_name: "Benchmark Admin" });
  }
  await client.login(email, password);
  return {
    client,
    admin: { email, password },
    description: url,
    l2: { on: "unknown", note: "L2 as configured on that server (see the cache counters)" },
  };
}

/** A fresh access token (for the streaming requests, which ApiClient does not make). */
export async function accessToken(target: Target): Promise<string> {
  const res = await target.client.raw("POST", "/api/auth/login", {
    bearer: null,
    contentType: "application/json",
    body: JSON.stringify(target.admin),
  });
  if (res.status !== 200) throw new Error(`POST /api/auth/login: ${res.status} ${res.text.slice(0, 300)}`);
  return String(res.json.access_token);
}

export interface Indexed {
  submitted: number;
  ready: number;
  failed: number;
  duplicates: number;
  seconds: number;
}

/** Imports the records and waits until every batch is done; documents already there count as duplicates. */
export async function importAndWait(
  client: ApiClient,
  records: ImportRecord[],
  options: { stallMs: number; deadline: number; say: (s: string) => void },
): Promise<Indexed> {
  const t0 = performance.now();
  const batches: string[] = [];
  let duplicates = 0;
  for (const body of importBodies(records, PER_IMPORT, IMPORT_MAX_BYTES)) {
    const accepted = await client.json("POST", "/api/admin/kb/import", 202, {
      body: body.ndjson,
      contentType: "application/x-ndjson",
      timeoutMs: IMPORT_TIMEOUT_MS,
    });
    batches.push(String(accepted.batch_id));
    duplicates += Number(accepted.duplicates ?? 0);
  }
  const totals = { ready: 0, failed: 0 };
  let progressAt = performance.now();
  let lastDone = -1;
  for (let tick = 0; ; tick++) {
    const states = await Promise.all(batches.map((id) => client.json("GET", `/api/admin/kb/import/${id}`, 200)));
    totals.ready = 0;
    totals.failed = 0;
    for (const state of states) {
      const s = state.status as { ready?: number; failed?: number };
      totals.ready += Number(s.ready ?? 0);
      totals.failed += Number(s.failed ?? 0);
    }
    if (states.every((s) => s.done === true)) break;
    const done = totals.ready + totals.failed;
    if (done !== lastDone) [lastDone, progressAt] = [done, performance.now()];
    if (performance.now() - progressAt > options.stallMs) throw new Error(`the import stalled at ${done} documents`);
    if (Date.now() > options.deadline) throw new Error(`the import was unfinished at the time limit (${done})`);
    if (tick % 15 === 0) options.say(`import: ${done} of ${records.length - duplicates} documents indexed`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  return { submitted: records.length, ...totals, duplicates, seconds: Math.round((performance.now() - t0) / 1000) };
}
