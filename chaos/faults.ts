// The method's actions other than a fault proxy's: CPU burners and Durable Object resets, and how each is named
// in the report.
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "./client.ts";
import type { FaultAction } from "./model.ts";
import type { Fixture } from "./workload.ts";

/** CPU burners of this process's own (one busy loop each), stopped by pid. */
export function burnCpu(workers: number): () => void {
  const children: ChildProcess[] = [];
  for (let i = 0; i < workers; i++) {
    children.push(spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" }));
  }
  return () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  };
}

/** Resets the experiment's chat rooms and the flag hub every `everyMs` for `durationMs`; how many resets answered 200. */
export async function evictRepeatedly(
  fixture: Fixture,
  action: Extract<FaultAction, { kind: "evict" }>,
  durationMs: number,
): Promise<number> {
  const until = Date.now() + durationMs;
  let evicted = 0;
  while (Date.now() < until) {
    const targets = action.objects.flatMap((object): { object: string; name?: string }[] =>
      object === "chat-room" ? fixture.chatRooms.map((c) => ({ object, name: c.id })) : [{ object }],
    );
    for (const json of targets) {
      const reply = await request(fixture.base, "/api/admin/chaos/evict", { token: fixture.admin.token, json });
      if (reply.status !== 200) throw new Error(`evict ${json.object}: ${reply.status} ${reply.text}`);
      evicted++;
    }
    await sleep(Math.min(action.everyMs, Math.max(0, until - Date.now())));
  }
  return evicted;
}

export function describeAction(action: FaultAction): string {
  if (action.kind === "cpu-burn") return `cpu-burn x${action.workers}`;
  if (action.kind === "evict") return `evict ${action.objects.join(", ")} every ${action.everyMs / 1000} s`;
  const { mode, ...rest } = action.fault;
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return `${action.target}: ${mode}${extra ? ` ${extra}` : ""}`;
}
