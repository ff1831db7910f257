// Linux /proc readings: the process tree of the dev server (to stop all of it and to attribute CPU time)
// and the machine's total CPU use (to tell our load from other users' on a shared machine).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  /** utime + stime in seconds. */
  cpuSeconds: number;
  command: string;
}

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function readProcess(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may itself contain spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    return {
      pid,
      state: fields[0] as string,
      ppid: Number(fields[1]),
      pgid: Number(fields[2]),
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
      command,
    };
  } catch {
    return undefined; // gone meanwhile
  }
}

export function listProcesses(): ProcessInfo[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readProcess(Number(name)))
    .filter((p): p is ProcessInfo => p !== undefined);
}

/** The root and every process below it, across process groups (wrangler runs in a group of its own). */
export function processTree(rootPid: number): ProcessInfo[] {
  const all = listProcesses();
  const children = new Map<number, ProcessInfo[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const root = all.find((p) => p.pid === rootPid);
  const out: ProcessInfo[] = [];
  const queue = root ? [root] : [];
  while (queue.length) {
    const p = queue.shift() as ProcessInfo;
    out.push(p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

export function isAlive(pid: number): boolean {
  const p = readProcess(pid);
  return p !== undefined && p.state !== "Z";
}

/** A short role for a process of the dev server, from its command line. */
export function roleOf(command: string): string {
  if (/workerd/.test(command)) return "workerd (the Worker)";
  if (/scripts\/dev\.ts/.test(command)) return "dev.ts (PGlite, Neon proxy, Upstash server)";
  if (/wrangler/.test(command)) return "wrangler (node)";
  if (/esbuild/.test(command)) return "esbuild";
  if (/npm/.test(command)) return "npm";
  return command.split(" ")[0] ?? command;
}

export interface CpuTotals {
  /** Busy and total jiffies of all cores since boot. */
  busy: number;
  total: number;
}

export function machineCpu(): CpuTotals {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] as string;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
  const total = values.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

export function machine() {
  const info = cpus();
  return {
    cores: info.length,
    cpu_model: info[0]?.model ?? "unknown",
    load_average_1m_at_start: Number(loadavg()[0]?.toFixed(2)),
  };
}
