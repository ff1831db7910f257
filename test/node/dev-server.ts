// Runs `npm run dev` (scripts/dev.ts, unchanged) for a Node-side test, isolated from a developer's own stack.
//
// scripts/dev.ts keeps its state next to itself: <root>/.data (PGlite, wrangler state, the dev signing key) and
// <root>/.wrangler/dev.vars.env (removed on exit), with no option to move them, and --reset wipes .data. So the
// test never runs it in the working tree: it builds a mirror in a temp dir (a symlink per top-level entry, except
// .data, .wrangler and .git; scripts/ as a real folder of symlinks plus a copy of dev.ts, so that dev.ts finds
// its root, and therefore its data, in the mirror) and runs `npm run dev` there: same package.json script, same
// code, own data, own env file, own ports. Everything the mirror holds is removed by stop().
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { configVariableNames } from "../../src/config.ts";

const ROOT = join(import.meta.dirname, "../..");
const LOG_LIMIT = 40_000;
// Entries of the working tree the mirror must not share: dev.ts's state, and git.
const PRIVATE = (name: string) =>
  name === ".data" || name.startsWith(".data.") || name === ".wrangler" || name === ".git";

export interface DevServer {
  /** https://127.0.0.1:<port> (or http: without --https). */
  url: string;
  port: number;
  /** The last LOG_LIMIT characters dev.ts, wrangler and workerd printed. */
  log(): string;
  /** Milliseconds from spawn to the first answer of GET /health. */
  startupMs: number;
  /**
   * The pid of the node process running scripts/dev.ts: in embedded mode it serves the database (PGlite, the Neon
   * proxy, the Upstash server); wrangler, workerd and the cron driver are other processes.
   */
  devScriptPid: number;
  /** Stops dev.ts (which stops wrangler's group and the stack), force-kills leftovers, removes the mirror. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1: bind port 0, read it, release it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed loosely; tests assert on the shape
  json: any;
}

/**
 * One HTTP(S) request that accepts wrangler's self-signed certificate (this request only: no process-wide
 * NODE_TLS_REJECT_UNAUTHORIZED). Node's fetch cannot take that option without the undici package.
 */
export function insecureRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; timeoutMs?: number } = {},
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const common = { method: init.method ?? "GET", headers: init.headers, timeout: init.timeoutMs ?? 15_000 };
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(
      url,
      { ...common, rejectUnauthorized: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${init.method ?? "GET"} ${url} timed out`)));
    req.on("error", reject);
    req.end(init.body);
  });
}

async function buildMirror(snapshot: string[] = []): Promise<{ dir: string; links: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "voiceassist-dev-mirror-"));
  const links: string[] = [];
  for (const name of await readdir(ROOT)) {
    if (PRIVATE(name) || name === "scripts") continue;
    if (snapshot.includes(name)) {
      await cp(join(ROOT, name), join(dir, name), { recursive: true });
      continue;
    }
    await symlink(join(ROOT, name), join(dir, name));
    links.push(join(dir, name));
  }
  await mkdir(join(dir, "scripts"));
  for (const name of await readdir(join(ROOT, "scripts"))) {
    if (name === "dev.ts") continue;
    await symlink(join(ROOT, "scripts", name), join(dir, "scripts", name));
    links.push(join(dir, "scripts", name));
  }
  // A copy, not a link: Node resolves a symlinked entry point to its real path, and dev.ts derives its root
  // (and so .data and the env file) from its own location.
  await copyFile(join(ROOT, "scripts", "dev.ts"), join(dir, "scripts", "dev.ts"));
  return { dir, links };
}

/** Process groups of the descendants of `pid` other than `ownGroup` (dev.ts starts wrangler in its own). */
async function descendantGroups(pid: number, ownGroup: number): Promise<number[]> {
  const parents = new Map<number, { ppid: number; pgid: number }>();
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ")".
      const [, ppid, pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(Number(entry), { ppid: Number(ppid), pgid: Number(pgid) });
    } catch {
      // Exited meanwhile.
    }
  }
  const groups = new Set<number>();
  const walk = (parent: number) => {
    for (const [child, info] of parents) {
      if (info.ppid !== parent) continue;
      if (info.pgid !== ownGroup) groups.add(info.pgid);
      walk(child);
    }
  };
  walk(pid);
  return [...groups];
}

/** The process of group `pgid` whose command line runs scripts/dev.ts (npm's child, possibly through a shell). */
async function devScriptPidIn(pgid: number): Promise<number | undefined> {
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) !== pgid) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (argv[0]?.endsWith("node") && argv[1]?.endsWith(join("scripts", "dev.ts"))) return Number(entry);
    } catch {
      // Exited meanwhile.
    }
  }
  return undefined;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
  return !groupAlive(pgid);
}

/**
 * Starts `npm run dev [-- --https]` in a mirror of the repository, on a free port, with PGlite in the mirror's
 * .data, Redis off (L2 off, so nothing touches a shared Redis) and only the given configuration variables.
 */
export async function startDevServer(options: {
  https: boolean;
  variables?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Also append everything dev.ts, wrangler and workerd print to this file (kept after stop()). */
  logFile?: string;
  /**
   * Top-level entries copied into the mirror instead of linked (e.g. ["src", "wrangler.toml"]): wrangler dev
   * rebuilds and reloads the Worker when a file it bundles changes, and a reload drops the local queue's
   * in-flight and delayed messages; a long run in a working tree that others edit takes a snapshot.
   */
  snapshot?: string[];
}): Promise<DevServer> {
  const { dir, links } = await buildMirror(options.snapshot);
  const port = await freePort();
  let output = "";
  const logFile = options.logFile;
  const capture = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-LOG_LIMIT);
    if (logFile) appendFileSync(logFile, chunk);
  };

  // Hermetic: no configuration variable leaks in from the caller's environment (DATABASE_URL, OPENAI_API_KEY...).
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of configVariableNames) delete env[name];
  Object.assign(env, { PORT: String(port), REDIS_URL: "redis://127.0.0.1:1" }, options.variables);

  const started = Date.now();
  const child: ChildProcess = spawn("npm", ["run", "dev", ...(options.https ? ["--", "--https"] : [])], {
    cwd: dir,
    env,
    // Its own process group: one signal reaches npm and dev.ts; dev.ts stops wrangler's group itself.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", capture);
  child.stderr?.on("data", capture);
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = signal ?? `code ${code}`;
      resolve();
    });
    child.once("error", (error) => {
      exited = `spawn error: ${error.message}`;
      resolve();
    });
  });
  const pgid = child.pid as number;
  // Insurance if the test process dies without afterAll: signal the group synchronously on exit.
  const onExit = () => {
    try {
      process.kill(-pgid, "SIGTERM");
    } catch {
      // Already gone.
    }
  };
  process.once("exit", onExit);

  let otherGroups: number[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      otherGroups = [...new Set([...otherGroups, ...(await descendantGroups(pgid, pgid))])];
      if (groupAlive(pgid)) {
        process.kill(-pgid, "SIGTERM");
        // dev.ts gives wrangler 5 s before SIGKILL, then stops the stack.
        await Promise.race([exit, sleep(20_000)]);
        if (!(await waitGone(pgid, 2_000))) process.kill(-pgid, "SIGKILL");
      }
      for (const group of otherGroups) {
        if (groupAlive(group) && !(await waitGone(group, 3_000))) {
          process.kill(-group, "SIGKILL");
          await waitGone(group, 2_000);
        }
      }
      process.removeListener("exit", onExit);
      for (const link of links) await unlink(link).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const scheme = options.https ? "https" : "http";
  const url = `${scheme}://127.0.0.1:${port}`;
  const deadline = started + (options.readyTimeoutMs ?? 200_000);
  try {
    for (;;) {
      if (exited) throw new Error(`npm run dev exited (${exited}) before serving`);
      if (Date.now() > deadline) throw new Error(`npm run dev did not answer GET ${url}/health in time`);
      const ok = await insecureRequest(`${url}/health`, { timeoutMs: 3_000 }).then(
        (res) => res.status === 200,
        () => false,
      );
      if (ok) break;
      await sleep(500);
    }
  } catch (error) {
    const log = output;
    await stop();
    throw new Error(`${(error as Error).message}\n--- dev output ---\n${log}`);
  }
  const startupMs = Date.now() - started;
  otherGroups = await descendantGroups(pgid, pgid);
  const devScriptPid = await devScriptPidIn(pgid);
  if (devScriptPid === undefined) {
    await stop();
    throw new Error("npm run dev serves, but no process of its group runs scripts/dev.ts");
  }
  return { url, port, startupMs, devScriptPid, log: () => output, stop };
}

/** A password every Node suite's accounts use (it passes the password policy). */
export const TEST_PASSWORD = "Granite-Harbour-Lantern-42";

async function postJson(server: DevServer, path: string, body: unknown, token?: string): Promise<HttpsResult> {
  return insecureRequest(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

/** Signs an account in; its access token. */
export async function signInAt(server: DevServer, email: string, password = TEST_PASSWORD): Promise<string> {
  const res = await postJson(server, "/api/auth/login", { email, password });
  if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${res.text}`);
  return res.json.access_token as string;
}

/** Creates the first admin with the server's ADMIN_BOOTSTRAP_TOKEN and signs it in; its access token. */
export async function bootstrapAdmin(server: DevServer, bootstrapToken: string, email: string): Promise<string> {
  const res = await postJson(
    server,
    "/api/admin/bootstrap",
    { email, password: TEST_PASSWORD, full_name: "Test Admin" },
    bootstrapToken,
  );
  if (res.status !== 201) throw new Error(`bootstrap: ${res.status} ${res.text}`);
  return signInAt(server, email);
}

/** Registers a plain user and signs it in. */
export async function registerUser(server: DevServer, email: string): Promise<{ id: string; token: string }> {
  const res = await postJson(server, "/api/auth/register", { email, password: TEST_PASSWORD, full_name: "Test User" });
  if (res.status !== 201) throw new Error(`register ${email}: ${res.status} ${res.text}`);
  return { id: res.json.id as string, token: await signInAt(server, email) };
}

/** Runs a suite's set-up; a failure carries the tail of what the dev server printed. */
export async function withDevLog<T>(server: DevServer, setUp: () => Promise<T>): Promise<T> {
  try {
    return await setUp();
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- dev output (tail) ---\n${server.log().slice(-8_000)}`);
  }
}
