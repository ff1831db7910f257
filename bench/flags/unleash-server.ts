// Unleash's own server for the HTTP comparison: unleash-server (npm, OSS edition) installed at bench time into
// bench/.unleash/ (git-ignored), run with the project's Node 22 on a fresh database of the machine's PostgreSQL,
// with init API tokens, loopback only, no version check, no telemetry. Flags are created through its admin API
// one by one, so that whatever it refuses is known per flag.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { Constraint, Segment, Strategy, UnleashFeature, Variant } from "../../src/flags/model.ts";
import { isAlive, type ProcessInfo, processTree } from "../ingest/proc.ts";

const run = promisify(execFile);
export const UNLEASH_VERSION = "8.2.0";
export const ENVIRONMENT = "development";
const PROJECT = "default";

export interface UnleashServer {
  url: string;
  pid: number;
  database: string;
  adminToken: string;
  frontendToken: string;
  clientToken: string;
  tree(): ProcessInfo[];
  stop(): Promise<void>;
}

type Defer = (step: () => Promise<unknown>) => void;

/** Installs unleash-server@8.2.0 into `prefix` unless it is there already (no install scripts run). */
export async function ensureInstalled(prefix: string, say: (s: string) => void): Promise<string> {
  const entry = join(prefix, "node_modules", "unleash-server", "dist", "server.js");
  const pkg = join(prefix, "node_modules", "unleash-server", "package.json");
  if (existsSync(entry) && existsSync(pkg)) {
    const { version } = JSON.parse(await readFile(pkg, "utf8")) as { version: string };
    if (version === UNLEASH_VERSION) return entry;
  }
  await mkdir(prefix, { recursive: true });
  say(`installing unleash-server@${UNLEASH_VERSION} into ${prefix} (npm install --prefix, no install scripts)`);
  const t0 = Date.now();
  await run(
    "npm",
    [
      "install",
      "--prefix",
      prefix,
      `unleash-server@${UNLEASH_VERSION}`,
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      "--no-save",
    ],
    { maxBuffer: 16 << 20, timeout: 5 * 60_000 },
  );
  say(`installed in ${Math.round((Date.now() - t0) / 1000)} s`);
  if (!existsSync(entry)) throw new Error(`npm install finished but ${entry} is missing`);
  return entry;
}

const psql = (sql: string) =>
  run(
    "psql",
    ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
    {
      timeout: 60_000,
    },
  );

/** Starts unleash-server on a new database `unleash_bench_<pid>`; `defer` receives its stop and the DROP. */
export async function startUnleash(options: {
  entry: string;
  node: string;
  port: number;
  logFile: string;
  defer: Defer;
  say: (s: string) => void;
  startTimeoutMs: number;
}): Promise<UnleashServer> {
  const database = `unleash_bench_${process.pid}`;
  await psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await psql(`CREATE DATABASE ${database}`);
  options.defer(async () => {
    await psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    options.say(`dropped database ${database}`);
  });
  const secret = () => randomBytes(20).toString("hex");
  const adminToken = `*:*.${secret()}`;
  const frontendToken = `${PROJECT}:${ENVIRONMENT}.${secret()}`;
  const clientToken = `${PROJECT}:${ENVIRONMENT}.${secret()}`;
  await mkdir(join(options.logFile, ".."), { recursive: true });
  const log = await open(options.logFile, "a");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TZ: "UTC",
    NODE_ENV: "production",
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${database}`,
    DATABASE_SSL: "false",
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(options.port),
    LOG_LEVEL: "warn",
    INIT_ADMIN_API_TOKENS: adminToken,
    INIT_FRONTEND_API_TOKENS: frontendToken,
    INIT_CLIENT_API_TOKENS: clientToken,
    UNLEASH_SECRET: secret(),
    // Nothing leaves the machine: no version check, no telemetry, no analytics.
    CHECK_VERSION: "false",
    UNLEASH_VERSION_URL: "http://127.0.0.1:9/",
    SEND_TELEMETRY: "false",
    SCARF_ANALYTICS: "false",
    DO_NOT_TRACK: "1",
    // Its SDK-API limit (20,000 requests a minute per token) would cap the load; lifted for the bench.
    TOKEN_AUTHENTICATION_RATE_LIMIT_PER_MINUTE: "100000000",
    SDK_API_RATE_LIMIT_PER_MINUTE: "100000000",
    // Unleash 8 refuses feature-level (environment) variants unless this switch of its own is on; its SDKs
    // (and so its frontend API) still evaluate them. On, so that those flags need not be left out.
    UNLEASH_EXPERIMENTAL_ENABLE_LEGACY_VARIANTS: "true",
  };
  const child: ChildProcess = spawn(options.node, [options.entry], {
    cwd: join(options.entry, "..", ".."),
    env,
    detached: true,
    stdio: ["ignore", log.fd, log.fd],
  });
  await log.close();
  const pid = child.pid as number;
  let exited: string | undefined;
  child.on("exit", (code, signal) => {
    exited = signal ?? `code ${code}`;
  });
  let last: ProcessInfo[] = [];
  const tree = () => {
    const now = processTree(pid);
    if (now.length) last = now;
    return now;
  };
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      tree();
      const members = last;
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        return;
      }
      for (let i = 0; i < 100 && members.some((p) => isAlive(p.pid)); i++) await sleep(100);
      for (const p of members) if (isAlive(p.pid)) process.kill(p.pid, "SIGKILL");
      options.say(`stopped unleash-server (process group ${pid})`);
    })();
    return stopping;
  };
  options.defer(stop);
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + options.startTimeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`unleash-server exited (${exited}) before /health answered; see ${options.logFile}`);
    const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return { url, pid, database, adminToken, frontendToken, clientToken, tree, stop };
    await sleep(500);
  }
  throw new Error(
    `unleash-server did not answer ${url}/health within ${options.startTimeoutMs} ms; see ${options.logFile}`,
  );
}

async function call(server: UnleashServer, method: string, path: string, body?: unknown, token = server.adminToken) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: token, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, text };
}

async function must(server: UnleashServer, method: string, path: string, body?: unknown) {
  const res = await call(server, method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text.slice(0, 400)}`);
  return res;
}

const strategyBody = (s: Strategy, segmentIds: Map<number, number>) => ({
  name: s.name,
  ...(s.title ? { title: s.title } : {}),
  disabled: s.disabled ?? false,
  sortOrder: s.sortOrder ?? 0,
  parameters: Object.fromEntries(Object.entries(s.parameters ?? {}).map(([k, v]) => [k, String(v)])),
  constraints: (s.constraints ?? []).map(constraintBody),
  segments: (s.segments ?? []).map((id) => segmentIds.get(id) ?? id),
  variants: (s.variants ?? []).map(variantBody),
});

const constraintBody = (c: Constraint) => ({
  contextName: c.contextName,
  operator: c.operator,
  ...(c.values ? { values: c.values } : {}),
  ...(c.value !== undefined ? { value: c.value } : {}),
  caseInsensitive: c.caseInsensitive ?? false,
  inverted: c.inverted ?? false,
});

const variantBody = (v: Variant) => ({
  name: v.name,
  weight: v.weight,
  weightType: v.weightType ?? "variable",
  stickiness: v.stickiness ?? "default",
  ...(v.payload ? { payload: v.payload } : {}),
  ...(v.overrides ? { overrides: v.overrides } : {}),
});

/** Built-in strategies of the Unleash SDKs that a fresh Unleash 8 server lacks, with their list parameter. */
const LEGACY_STRATEGIES: Record<string, string> = { userWithId: "userIds", remoteAddress: "IPs" };

export interface Seeded {
  created: string[];
  /** Flags its admin API refused, with its answer (they are archived, so it does not serve them). */
  refused: Map<string, string>;
  /** Strategy types the server did not know and the bench declared. */
  strategyTypesAdded: string[];
  seconds: number;
}

/**
 * Creates the context fields, segments and flags (strategies with their constraints, segments and variants;
 * environment variants; dependencies; on/off in `development`, which the frontend token is bound to).
 */
export async function seedUnleash(
  server: UnleashServer,
  features: UnleashFeature[],
  segments: Segment[],
  contextFields: { name: string; stickiness: boolean }[],
  say: (s: string) => void,
): Promise<Seeded> {
  const t0 = performance.now();
  for (const field of contextFields) {
    const res = await call(server, "POST", "/api/admin/context", {
      name: field.name,
      description: "bench:flags",
      stickiness: field.stickiness,
      legalValues: [],
    });
    if (res.status >= 300 && res.status !== 409)
      throw new Error(`POST /api/admin/context ${field.name}: ${res.status} ${res.text}`);
  }
  // A fresh 8.2.0 database no longer has the userWithId strategy type (its migrations only add default,
  // applicationHostname, remoteAddress and flexibleRollout), while its SDK, which the frontend API evaluates
  // with, still implements it: declared as a (custom) strategy type with its one parameter.
  const known = JSON.parse((await must(server, "GET", "/api/admin/strategies")).text) as {
    strategies: { name: string }[];
  };
  const used = new Set(features.flatMap((f) => (f.strategies ?? []).map((s) => s.name)));
  const added: string[] = [];
  for (const [name, parameter] of Object.entries(LEGACY_STRATEGIES)) {
    if (!used.has(name) || known.strategies.some((s) => s.name === name)) continue;
    await must(server, "POST", "/api/admin/strategies", {
      name,
      description: "bench:flags: Unleash's legacy built-in strategy, declared for its SDK to evaluate",
      parameters: [{ name: parameter, type: "list", description: "", required: false }],
    });
    added.push(name);
  }
  const segmentIds = new Map<number, number>();
  for (const segment of segments) {
    const res = await must(server, "POST", "/api/admin/segments", {
      name: segment.name ?? `segment-${segment.id}`,
      description: segment.description ?? "bench:flags",
      constraints: segment.constraints.map(constraintBody),
    });
    segmentIds.set(segment.id, Number(JSON.parse(res.text).id));
  }
  const refused = new Map<string, string>();
  const created: string[] = [];
  const base = `/api/admin/projects/${PROJECT}/features`;
  const one = async (f: UnleashFeature) => {
    const parent = f.dependencies?.find((d) => refused.has(d.feature));
    if (parent) {
      refused.set(f.name, `depends on ${parent.feature}, which Unleash refused`);
      return;
    }
    await must(server, "POST", base, {
      name: f.name,
      type: f.type ?? "release",
      description: f.description ?? "",
      impressionData: false,
    });
    try {
      const env = `${base}/${encodeURIComponent(f.name)}/environments/${ENVIRONMENT}`;
      for (const s of f.strategies ?? []) await must(server, "POST", `${env}/strategies`, strategyBody(s, segmentIds));
      if (f.variants?.length) await must(server, "PUT", `${env}/variants`, f.variants.map(variantBody));
      for (const d of f.dependencies ?? []) {
        await must(server, "POST", `${base}/${encodeURIComponent(f.name)}/dependencies`, {
          feature: d.feature,
          enabled: d.enabled ?? true,
          ...(d.variants?.length ? { variants: d.variants } : {}),
        });
      }
      if (f.enabled) await must(server, "POST", `${env}/on`);
      created.push(f.name);
    } catch (error) {
      refused.set(f.name, (error as Error).message);
      // Archived: the frontend API no longer serves it.
      await call(server, "DELETE", `${base}/${encodeURIComponent(f.name)}`);
    }
  };
  // Parents before children; independent flags four at a time.
  const isChild = (f: UnleashFeature) => Boolean(f.dependencies?.length);
  for (const group of [features.filter((f) => !isChild(f)), features.filter(isChild)]) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < group.length) await one(group[next++] as UnleashFeature);
      }),
    );
  }
  say(`unleash: ${created.length} flags created, ${refused.size} refused`);
  return { created, refused, strategyTypesAdded: added, seconds: (performance.now() - t0) / 1000 };
}

/** What Unleash serves its SDKs after the seeding (`GET /api/client/features`), to compare with the workload. */
export async function clientFeatures(server: UnleashServer) {
  const res = await call(server, "GET", "/api/client/features", undefined, server.clientToken);
  if (res.status !== 200) throw new Error(`GET /api/client/features: ${res.status} ${res.text.slice(0, 300)}`);
  return JSON.parse(res.text) as { features: UnleashFeature[]; segments?: Segment[] };
}
