// Runs `npm run dev` as a child in a process group of its own and stops all of it afterwards: the group
// gets SIGTERM (dev.ts then stops wrangler's own group and the local stack), and whatever of the tree
// is still there after the grace period gets SIGKILL by pid, so no workerd is left behind.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, type ProcessInfo, processTree } from "./proc.ts";

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

export type SnapshotSource = "head" | "working-tree";

export interface Snapshot {
  dir: string;
  source: SnapshotSource;
  commit: string;
  /** Files that differ from the commit (working-tree snapshots only). */
  changes: string[];
  remove(): Promise<void>;
}

/**
 * A private copy of the checkout for `npm run dev` to run in: wrangler rebuilds and reloads the Worker
 * whenever a source file changes, and a reload drops the local queue's pending messages, so a run in
 * the shared checkout stalls when someone edits src/ meanwhile. The copy also has its own .data/ and
 * .wrangler/, leaving the developer's local state alone.
 */
export async function createSnapshot(root: string, source: SnapshotSource): Promise<Snapshot> {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20 });
  const commit = git("rev-parse", "--short", "HEAD").trim();
  const dir = await mkdtemp(join(tmpdir(), "voiceassist-bench-"));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    let changes: string[] = [];
    if (source === "head") {
      execFileSync("sh", ["-c", 'git archive --format=tar HEAD | tar -x -C "$1"', "sh", dir], { cwd: root });
    } else {
      const files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0").filter(Boolean);
      for (const file of files) {
        if (!existsSync(join(root, file))) continue; // deleted in the working tree
        await mkdir(dirname(join(dir, file)), { recursive: true });
        await copyFile(join(root, file), join(dir, file));
      }
      changes = git("status", "--porcelain").split("\n").filter(Boolean);
    }
    // A copy, not a link: esbuild (in watch mode under wrangler) resolves links to their real path and
    // then watches the package.json and tsconfig.json above it, i.e. the shared checkout's, so an edit
    // to package.json there would still reload the Worker in the copy.
    execFileSync("cp", ["-a", join(root, "node_modules"), join(dir, "node_modules")]);
    return { dir, source, commit, changes, remove };
  } catch (error) {
    await remove();
    throw error;
  }
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

async function stopTree(
  groupId: number,
  snapshot: () => ProcessInfo[],
): Promise<{ killed: number[]; leftovers: number[] }> {
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
