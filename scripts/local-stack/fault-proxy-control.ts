// The control server of the local stack's fault proxies (fault-proxy.ts), for a chaos runner in another
// process: `LOCAL_FAULT_PROXY_PORT=<port> npm run dev` puts a fault proxy in front of the Neon proxy and the
// Upstash server and serves this on 127.0.0.1:<port>.
//   GET /faults                 {targets: {postgres: {fault, stats}, redis: {...}}}
//   PUT /faults/<target>        body: a Fault (fault-proxy.ts), e.g. {"mode":"refuse"}; 200 with the target
//   DELETE /faults              every target back to {"mode":"pass"}

import type { Fault, FaultProxy } from "./fault-proxy.ts";
import { closeServer, createLocalServer, listenOnFreePort, RequestError, readJsonBody, sendJson } from "./http.ts";

const MODES = new Set(["pass", "refuse", "blackhole", "latency", "http-status"]);

export async function startFaultControl(
  proxies: Record<string, FaultProxy>,
  port: number,
): Promise<{ url: string; stop(): Promise<void> }> {
  const describe = (name: string, proxy: FaultProxy) => ({ name, fault: proxy.fault(), stats: proxy.stats() });
  const server = createLocalServer(async (request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    try {
      if (request.method === "GET" && path === "/faults") {
        const targets = Object.fromEntries(Object.entries(proxies).map(([name, p]) => [name, describe(name, p)]));
        return sendJson(response, 200, { targets });
      }
      if (request.method === "DELETE" && path === "/faults") {
        for (const proxy of Object.values(proxies)) proxy.setFault({ mode: "pass" });
        return sendJson(response, 200, { cleared: Object.keys(proxies) });
      }
      const target = /^\/faults\/([a-z-]+)$/.exec(path)?.[1];
      if (request.method === "PUT" && target) {
        const proxy = proxies[target];
        if (!proxy) return sendJson(response, 404, { message: `no fault proxy named ${target}` });
        proxy.setFault(parseFault(await readJsonBody(request, 4096)));
        return sendJson(response, 200, describe(target, proxy));
      }
      sendJson(response, 404, { message: "use GET /faults, PUT /faults/<target> or DELETE /faults" });
    } catch (error) {
      sendJson(response, error instanceof RequestError ? error.status : 500, { message: (error as Error).message });
    }
  });
  if (port === 0) await listenOnFreePort(server);
  else {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
  }
  const { port: bound } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${bound}`, stop: () => closeServer(server) };
}

function parseFault(body: unknown): Fault {
  const fault = body as Record<string, unknown> | null;
  if (!fault || typeof fault !== "object" || !MODES.has(fault.mode as string)) {
    throw new RequestError(400, `mode must be one of ${[...MODES].join(", ")}`);
  }
  const number = (name: string, required: boolean) => {
    const value = fault[name];
    if (value === undefined && !required) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new RequestError(400, `${name} must be a number >= 0`);
    }
    return value;
  };
  if (fault.mode === "latency")
    return { mode: "latency", ms: number("ms", true)!, jitterMs: number("jitterMs", false) };
  if (fault.mode === "http-status") {
    return {
      mode: "http-status",
      status: number("status", true)!,
      retryAfterSeconds: number("retryAfterSeconds", false),
    };
  }
  return { mode: fault.mode as "pass" | "refuse" | "blackhole" };
}
