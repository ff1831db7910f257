// Helpers for the feature-flag suites: admin writes through the API, the rule-set version in Postgres and KV,
// a KV that fails, a reader of the change stream and a runner for one cron job.
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { expect, vi } from "vitest";
import { queryRows } from "../../src/db/client.ts";
import type { Env } from "../../src/env.ts";
import type { Snapshot } from "../../src/flags/model.ts";
import { KV_SNAPSHOT_KEY, KV_VERSION_KEY } from "../../src/flags/snapshot-cache.ts";
import { type CronJob, type CronTable, runCron } from "../../src/jobs/cron.ts";
import { cronJobs } from "../../src/jobs/schedule.ts";
import { type CallOptions, type CallResult, call, callRaw } from "./harness.ts";
import { db } from "./identity-helpers.ts";

export const workerEnv = env as unknown as Env;

/** A flag key no other test (or file: they share Postgres) uses. */
export const uniqueFlagKey = (tag: string) => `rt.${tag}.${crypto.randomUUID().slice(0, 8)}`;
export const flagPath = (key: string, rest = "") => `/api/admin/flags/${encodeURIComponent(key)}${rest}`;

async function expectStatus(res: CallResult, status: number, what: string) {
  if (res.status !== status) throw new Error(`${what} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** POST /api/admin/flags; throws unless 201. */
export async function createFlag(adminToken: string, body: Record<string, unknown>) {
  return expectStatus(await call("POST", "/api/admin/flags", { token: adminToken, json: body }), 201, "create flag");
}

/** POST /api/admin/flags/{key}/toggle; throws unless 200. */
export async function toggleFlag(adminToken: string, key: string, enabled?: boolean) {
  const json = enabled === undefined ? {} : { enabled };
  return expectStatus(await call("POST", flagPath(key, "/toggle"), { token: adminToken, json }), 200, "toggle");
}

/** PUT /api/admin/flags/{key}/overrides/{userId}; throws unless 200. */
export async function setOverride(adminToken: string, key: string, userId: string, body: Record<string, unknown>) {
  const path = flagPath(key, `/overrides/${encodeURIComponent(userId)}`);
  return expectStatus(await call("PUT", path, { token: adminToken, json: body }), 200, "set override");
}

/** POST /api/flags/evaluate for the caller. */
export const evaluateFor = (token: string, context: Record<string, unknown> = {}, options: CallOptions = {}) =>
  call("POST", "/api/flags/evaluate", { ...options, token, json: { context } });

/** The rule-set version in Postgres (flag_state). */
export async function ruleSetVersion(): Promise<number> {
  const [row] = await queryRows<{ version: string | number }>(db, sql`select version from flag_state where id = 1`);
  return Number(row?.version ?? 0);
}

/** What KV holds: the version key (null when absent) and the snapshot. */
export async function kvState(): Promise<{ version: number | null; snapshot: Snapshot | null }> {
  const version = await workerEnv.FLAGS_KV.get(KV_VERSION_KEY);
  const snapshot = await workerEnv.FLAGS_KV.get<Snapshot>(KV_SNAPSHOT_KEY, "json");
  return { version: version === null ? null : Number(version), snapshot };
}

/** A KV namespace whose reads fail (an outage); writes still reach the real one. Counts the reads tried. */
export function failingKv(kv: KVNamespace = workerEnv.FLAGS_KV) {
  const reads = vi.fn(() => {
    throw new Error("KV is unavailable (test outage)");
  });
  const namespace = {
    get: reads,
    getWithMetadata: reads,
    list: reads,
    put: kv.put.bind(kv),
    delete: kv.delete.bind(kv),
  } as unknown as KVNamespace;
  return { namespace, reads };
}

/** A KV namespace that passes everything through and counts reads. */
export function countingKv(kv: KVNamespace = workerEnv.FLAGS_KV) {
  const reads = vi.fn((...args: unknown[]) => (kv.get as (...a: unknown[]) => unknown)(...args));
  const namespace = {
    get: reads,
    getWithMetadata: kv.getWithMetadata.bind(kv),
    list: kv.list.bind(kv),
    put: kv.put.bind(kv),
    delete: kv.delete.bind(kv),
  } as unknown as KVNamespace;
  return { namespace, reads };
}

export interface SseEvent {
  event: string;
  id?: string;
  data: unknown;
}

/** Reads server-sent events off a response, one at a time, each read bounded by a timeout. */
export class EventReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffer = "";
  private pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  readonly response: Response;

  constructor(response: Response) {
    this.response = response;
    if (!response.body) throw new Error("the response has no body");
    this.reader = response.body.getReader();
  }

  /** The next event (comments and retry-only frames skipped); rejects after timeoutMs. */
  async next(timeoutMs = 5_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.takeFrame();
      if (frame) {
        const parsed = parseFrame(frame);
        if (parsed) return parsed;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buffer)})`);
      this.pending ??= this.reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), left);
      });
      const result = await Promise.race([this.pending, timeout]).finally(() => clearTimeout(timer));
      if (result === "timeout") continue;
      this.pending = undefined;
      if (result.done) throw new Error(`the stream ended (buffered: ${JSON.stringify(this.buffer)})`);
      this.buffer += this.decoder.decode(result.value, { stream: true });
    }
  }

  /** Resolves to the next event, or undefined when none arrives within timeoutMs. */
  async maybeNext(timeoutMs: number): Promise<SseEvent | undefined> {
    try {
      return await this.next(timeoutMs);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("no event within")) return undefined;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }

  private takeFrame(): string | undefined {
    const end = this.buffer.indexOf("\n\n");
    if (end < 0) return undefined;
    const frame = this.buffer.slice(0, end);
    this.buffer = this.buffer.slice(end + 2);
    return frame;
  }
}

function parseFrame(frame: string): SseEvent | undefined {
  let event: string | undefined;
  let id: string | undefined;
  const data: string[] = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (event === undefined && data.length === 0) return undefined;
  const text = data.join("\n");
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { event: event ?? "message", ...(id === undefined ? {} : { id }), data: parsed };
}

/** Opens GET /api/flags/stream; the caller must close() the reader it returns. */
export async function openStream(token: string | undefined, headers: Record<string, string> = {}) {
  const res = await callRaw("GET", "/api/flags/stream", { token, headers });
  return new EventReader(res);
}

/**
 * Runs one job of the Worker's cron table through the real dispatcher (runCron), alone: the other jobs of its cron
 * are left out of the run. Returns the outcome the dispatcher counted (cron_job_runs_total), "ok" or "error".
 */
export async function runCronJob(cron: string, name: string): Promise<string | undefined> {
  const jobs: Readonly<Record<string, CronJob>> | undefined = (cronJobs as CronTable)[cron];
  const job = jobs?.[name];
  expect(job, `${name} is listed under "${cron}"`).toBeDefined();
  const writes = vi.spyOn(workerEnv.ANALYTICS, "writeDataPoint");
  try {
    const ctx = createExecutionContext();
    const table = { [cron]: { [name]: job as CronJob } };
    await runCron(table, createScheduledController({ cron, scheduledTime: Date.now() }), workerEnv, ctx);
    await waitOnExecutionContext(ctx);
    const run = writes.mock.calls
      .map(([point]) => point?.blobs)
      .find((blobs) => blobs?.[0] === "cron_job_runs_total" && blobs[2] === name);
    return run?.[3] as string | undefined;
  } finally {
    writes.mockRestore();
  }
}
