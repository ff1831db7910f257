// Runs `npm run dev` as a child in a process group of its own and stops all of it afterwards: the group
// gets SIGTERM (dev.ts then stops wrangler's own group and the local stack), and whatever of the tree
// is still there after the grace period gets SIGKILL by pid, so no workerd is left behind.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, open, readFile, readlink, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, listProcesses, type ProcessInfo, processTree } from "./proc.ts";

const STOP_GRACE_MS = 20_000; // dev.ts gives wrangler 5 s, then stops PGlite
const HEALTH_POLL_MS = 500;

export interface DevServerOptions {
  root: string;
  port: number;
  env: Record<string, string>;
  logFile: string;
  startTimeoutMs: number;
}

export interface DevServer {
  url: string;
  pid: number;
  logFile: string;
  tree(): ProcessInfo[];
  stop(): Promise<{ killed: number[]; leftovers: number[] }>;
}

/** Another `npm run dev` of this checkout would share .data/ and .wrangler/: refuse to run beside it. */
export async function otherDevServers(root: string): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const p of listProcesses()) {
    if (!/scripts\/dev\.ts/.test(p.command) || p.pid === process.pid) continue;
    const cwd = await readlink(`/proc/${p.pid}/cwd`).catch(() => "");
    if (cwd === root) found.push(p);
  }
  return found;
}

/**
 * npm run dev keeps its data in .data/ and has no option for another folder, and every run must start
 * empty (the import deduplicates by content). So the developer's .data/ is moved aside for the
 * benchmark and put back afterwards; runs use `npm run dev -- --reset` on the moved-aside state.
 */
export async function stashData(root: string): Promise<{ restore(): Promise<void> }> {
  const data = join(root, ".data");
  const stash = join(root, ".data.bench-stash");
  if (existsSync(stash)) {
    throw new Error(
      `${stash} exists: an earlier benchmark did not finish. Move it back to .data (or delete it) and run again.`,
    );
  }
  const had = existsSync(data);
  if (had) await rename(data, stash);
  return {
    async restore() {
      await rm(data, { recursive: true, force: true });
      if (had) await rename(stash, data);
    },
  };
}

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  await mkdir(join(options.logFile, ".."), { recursive: true });
  const log = await open(options.logFile, "a");
  const child: ChildProcess = spawn("npm", ["run", "dev", "--", "--reset"], {
    cwd: options.root,
    detached: true, // its own process group
    stdio: ["ignore", log.fd, log.fd],
    env: { ...process.env, ...options.env, PORT: String(options.port), FORCE_COLOR: "0" },
  });
  await log.close();
  const pid = child.pid;
  if (!pid) throw new Error("npm run dev did not start");
  let exited: string | undefined;
  child.on("exit", (code, signal) => {
    exited = signal ?? `code ${code}`;
  });

  const url = `http://127.0.0.1:${options.port}`;
  let lastTree: ProcessInfo[] = [];
  const tree = () => {
    const now = processTree(pid);
    if (now.length) lastTree = now;
    return now;
  };
  let stopped: Promise<{ killed: number[]; leftovers: number[] }> | undefined;
  const server: DevServer = {
    url,
    pid,
    logFile: options.logFile,
    tree,
    stop: () => {
      stopped ??= stopTree(pid, () => {
        tree();
        return lastTree;
      });
      return stopped;
    },
  };

  const deadline = Date.now() + options.startTimeoutMs;
  try {
    while (Date.now() < deadline) {
      tree();
      if (exited) throw new Error(`npm run dev exited (${exited}) before /health answered; see ${options.logFile}`);
      const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ok) return server;
      await sleep(HEALTH_POLL_MS);
    }
    throw new Error(`GET ${url}/health did not answer 200 within ${options.startTimeoutMs} ms; see ${options.logFile}`);
  } catch (error) {
    await server.stop();
    throw error;
  }
}

async function stopTree(groupId: number, snapshot: () => ProcessInfo[]): Promise<{ killed: number[]; leftovers: number[] }> {
  // Remember every process (and the groups below ours, e.g. wrangler's) before signalling.
  const members = snapshot();
  try {
    process.kill(-groupId, "SIGTERM");
  } catch {
    // the group is already gone
  }
  const deadline = Date.now() + STOP_GRACE_MS;
  let alive = members.filter((p) => isAlive(p.pid));
  while (alive.length && Date.now() < deadline) {
    await sleep(200);
    alive = members.filter((p) => isAlive(p.pid));
  }
  const killed: number[] = [];
  for (const p of alive) {
    try {
      process.kill(p.pid, "SIGKILL");
      killed.push(p.pid);
    } catch {
      // exited meanwhile
    }
  }
  await sleep(500);
  return { killed, leftovers: members.filter((p) => isAlive(p.pid)).map((p) => p.pid) };
}

export async function readLog(file: string): Promise<string> {
  return readFile(file, "utf8").catch(() => "");
}
