// CPU time over a stretch of a bench run: the processes under test by role (from /proc), this client, and the
// whole machine, so that other people's work on a shared machine shows apart from ours.
import { machineCpu, type ProcessInfo } from "../ingest/proc.ts";

export interface CpuReading {
  /** Wall seconds since the meter started. */
  wall: number;
  /** CPU seconds of the processes, summed by role. */
  byRole: Record<string, number>;
  /** CPU seconds of this process (the client). */
  client: number;
  /** Busy CPU seconds of the whole machine (all cores). */
  busy: number;
  /** Busy seconds of neither the processes nor the client (other people's work), at least 0. */
  others: number;
}

/**
 * Starts a meter over the processes `processes()` lists now and later (a process that appears later counts
 * from 0); the function returned reads it.
 */
export function startCpuMeter(processes: () => { role: string; info: ProcessInfo }[]): () => CpuReading {
  const before = new Map(processes().map((p) => [p.info.pid, p.info.cpuSeconds]));
  const machine = machineCpu();
  const own = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const byRole: Record<string, number> = {};
    for (const { role, info } of processes()) {
      byRole[role] = (byRole[role] ?? 0) + info.cpuSeconds - (before.get(info.pid) ?? 0);
    }
    const mine = process.cpuUsage(own);
    const client = (mine.user + mine.system) / 1e6;
    const busy = machineCpu().busy - machine.busy;
    const ours = Object.values(byRole).reduce((a, b) => a + b, 0) + client;
    return { wall, byRole, client, busy, others: Math.max(0, busy - ours) };
  };
}
