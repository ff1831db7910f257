// What the experiments run against: a `npm run dev` started here in an isolated mirror (test/node/dev-server.ts)
// with the fault proxies on (LOCAL_FAULT_PROXY_PORT), a Redis of its own (redis-server on a free port, so no
// shared Redis is touched) and the OpenAI-compatible stand-in behind a fault proxy of this process; or a
// server already running at a URL given on the command line (then only what it offers is exercised).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Fault } from "../scripts/local-stack/fault-proxy.ts";
import { type FaultProxy, startFaultProxy } from "../scripts/local-stack/fault-proxy.ts";
import { type DevServer, freePort, startDevServer } from "../test/node/dev-server.ts";
import { startOpenAiStandIn } from "../test/standins/openai.ts";
import type { FaultTarget } from "./model.ts";

export interface Target {
  url: string;
  operatorToken: string;
  bootstrapToken: string;
  /** Fault targets this target offers. */
  faultTargets: FaultTarget[];
  redis: boolean;
  openai: boolean;
  /** POST /api/admin/chaos/evict is open (CHAOS_EVICTION=on). */
  eviction: boolean;
  setFault(target: FaultTarget, fault: Fault): Promise<void>;
  log(): string;
  /** Where the whole of the dev server's output is kept (a file in the run's temp dir), when this started it. */
  logFile?: string;
  stop(): Promise<void>;
}

/** Starts redis-server on a free loopback port, without persistence, in its own process group. */
async function startRedis(): Promise<{ url: string; stop(): Promise<void> } | undefined> {
  if (spawnSync("redis-server", ["--version"]).status !== 0) return undefined;
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { detached: true, stdio: "ignore" },
  );
  const pid = child.pid as number;
  const stop = async () => {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      return;
    }
    await new Promise((resolve) => child.once("exit", resolve));
  };
  for (let i = 0; i < 50; i++) {
    if (
      spawnSync("redis-cli", ["-p", String(port), "ping"])
        .stdout?.toString()
        .trim() === "PONG"
    ) {
      return { url: `redis://127.0.0.1:${port}`, stop };
    }
    await sleep(100);
  }
  await stop();
  return undefined;
}

async function controlFault(controlUrl: string, target: string, fault: Fault): Promise<void> {
  const res = await fetch(`${controlUrl}/faults/${target}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(fault),
  });
  if (!res.ok) throw new Error(`fault control ${target}: ${res.status} ${await res.text()}`);
}

/** `npm run dev` in a mirror, with every fault target this machine can offer. */
export async function startLocalTarget(options: { variables?: Record<string, string> } = {}): Promise<Target> {
  const runDir = await mkdtemp(join(tmpdir(), "chaos-run-"));
  const logFile = join(runDir, "dev.log");
  const redis = await startRedis();
  const openai = await startOpenAiStandIn();
  let openaiProxy: FaultProxy | undefined;
  let server: DevServer | undefined;
  try {
    openaiProxy = await startFaultProxy({ upstream: new URL(openai.url).host });
    const controlPort = await freePort();
    const operatorToken = randomBytes(24).toString("base64url");
    const bootstrapToken = randomBytes(24).toString("base64url");
    server = await startDevServer({
      https: false,
      logFile,
      // A reload (any edit of src/ in the working tree) would drop the local queue's messages mid-experiment.
      snapshot: ["src", "workers", "migrations", "wrangler.toml"],
      variables: {
        LOCAL_FAULT_PROXY_PORT: String(controlPort),
        ...(redis ? { REDIS_URL: redis.url } : {}),
        OPENAI_API_KEY: "sk-chaos-standin",
        OPENAI_BASE_URL: `http://${openaiProxy.hostPort}/v1`,
        OPERATOR_TOKEN: operatorToken,
        ADMIN_BOOTSTRAP_TOKEN: bootstrapToken,
        ACCESS_TOKEN_TTL_SECONDS: "7200",
        // The workload signs in and registers far more often than a person: the limits are not under test here.
        RATE_LIMIT_LOGIN: "1000000/60",
        RATE_LIMIT_REGISTER: "1000000/60",
        RATE_LIMIT_REFRESH: "1000000/60",
        // queue-redelivery proves kb-requeue-stuck recovers lost messages within a run (30 by default).
        KB_REQUEUE_STUCK_AFTER_MINUTES: "1",
        // durable-object-eviction resets chat rooms and the flag hub through the admin route this opens.
        CHAOS_EVICTION: "on",
        ...options.variables,
      },
    });
    const dev = server;
    const proxy = openaiProxy;
    const controlUrl = `http://127.0.0.1:${controlPort}`;
    return {
      url: dev.url,
      operatorToken,
      bootstrapToken,
      faultTargets: redis ? ["postgres", "redis", "openai"] : ["postgres", "openai"],
      redis: Boolean(redis),
      openai: true,
      eviction: true,
      async setFault(target, fault) {
        if (target === "openai") proxy.setFault(fault);
        else await controlFault(controlUrl, target, fault);
      },
      log: () => dev.log(),
      logFile,
      async stop() {
        await dev.stop();
        await proxy.stop();
        await openai.stop();
        await redis?.stop();
      },
    };
  } catch (error) {
    await server?.stop();
    await openaiProxy?.stop();
    await openai.stop();
    await redis?.stop();
    throw error;
  }
}

/** A server already running (e.g. `LOCAL_FAULT_PROXY_PORT=9999 npm run dev`); faults through its control URL. */
export function remoteTarget(options: {
  url: string;
  operatorToken: string;
  bootstrapToken: string;
  faultControlUrl?: string;
  redis: boolean;
  eviction: boolean;
}): Target {
  const { faultControlUrl } = options;
  return {
    url: options.url.replace(/\/$/, ""),
    operatorToken: options.operatorToken,
    bootstrapToken: options.bootstrapToken,
    faultTargets: faultControlUrl ? (options.redis ? ["postgres", "redis"] : ["postgres"]) : [],
    redis: options.redis,
    openai: false,
    eviction: options.eviction,
    async setFault(target, fault) {
      if (!faultControlUrl) throw new Error("no fault control URL (--faults)");
      await controlFault(faultControlUrl, target, fault);
    },
    log: () => "",
    stop: async () => {},
  };
}
