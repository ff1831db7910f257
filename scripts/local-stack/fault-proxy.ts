// A fault-injecting TCP proxy for chaos experiments (chaos/, docs/chaos.md): it sits on 127.0.0.1 in front of
// one local service (the Neon proxy, the Upstash server, the OpenAI stand-in) and passes bytes through until
// told to misbehave. Faults are set at run time, by the chaos runner, through setFault() or the control server
// (fault-proxy-control.ts). Loopback only: it listens on 127.0.0.1 and dials only its one upstream.
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * - `pass`: bytes go through unchanged.
 * - `refuse`: open connections are reset and new ones are reset at once (the service is down).
 * - `blackhole`: connections are accepted and what they send is dropped, nothing ever answers (a partition);
 *   connections already open go silent too. Lifting it resets them: their streams lost bytes.
 * - `latency`: every chunk the upstream sends back is delayed by `ms` ± `jitterMs` (order kept), so each
 *   request/response round trip takes about `ms` longer.
 * - `http-status`: each new connection's first HTTP request is answered with `status` (and `Retry-After`
 *   when `retryAfterSeconds` is set), then closed: an HTTP upstream failing (500, 429).
 */
export type Fault =
  | { mode: "pass" }
  | { mode: "refuse" }
  | { mode: "blackhole" }
  | { mode: "latency"; ms: number; jitterMs?: number }
  | { mode: "http-status"; status: number; retryAfterSeconds?: number };

export interface FaultProxyStats {
  connections: number;
  /** Connections reset, silenced or answered by a fault instead of reaching the upstream. */
  faulted: number;
}

export interface FaultProxy {
  /** "127.0.0.1:PORT": dial this instead of the upstream. */
  hostPort: string;
  upstream: string;
  fault(): Fault;
  setFault(fault: Fault): void;
  stats(): FaultProxyStats;
  stop(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream?: Socket;
  silenced: boolean;
}

/** Listens on a free port of 127.0.0.1 and forwards to `upstream` ("127.0.0.1:PORT"). */
export async function startFaultProxy(options: { upstream: string; random?: () => number }): Promise<FaultProxy> {
  const [host, portText] = splitHostPort(options.upstream);
  const random = options.random ?? Math.random;
  let current: Fault = { mode: "pass" };
  const links = new Set<Link>();
  const stats: FaultProxyStats = { connections: 0, faulted: 0 };

  const server: Server = createServer((client) => {
    stats.connections++;
    client.on("error", () => {});
    const fault = current;
    if (fault.mode === "refuse") {
      stats.faulted++;
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, silenced: fault.mode === "blackhole" };
    links.add(link);
    client.on("close", () => {
      links.delete(link);
      link.upstream?.destroy();
    });
    if (fault.mode === "blackhole") {
      stats.faulted++;
      client.on("data", () => {});
      return;
    }
    if (fault.mode === "http-status") {
      stats.faulted++;
      answerWithStatus(client, fault);
      return;
    }
    const upstream = connect(Number(portText), host);
    link.upstream = upstream;
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    client.on("data", (chunk: Buffer) => {
      if (!link.silenced) upstream.write(chunk);
    });
    client.on("end", () => upstream.end());
    let lastDelivery = 0;
    upstream.on("data", (chunk: Buffer) => {
      if (link.silenced) return;
      const now = current;
      if (now.mode !== "latency") {
        if (lastDelivery <= Date.now()) client.write(chunk);
        else setTimeout(() => client.writable && client.write(chunk), lastDelivery - Date.now());
        return;
      }
      const jitter = now.jitterMs ? (random() * 2 - 1) * now.jitterMs : 0;
      // Chunks leave in the order they came: never before the previous one.
      lastDelivery = Math.max(lastDelivery, Date.now() + Math.max(0, now.ms + jitter));
      setTimeout(() => client.writable && client.write(chunk), lastDelivery - Date.now());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };

  return {
    hostPort: `127.0.0.1:${port}`,
    upstream: options.upstream,
    fault: () => current,
    setFault(fault) {
      const previous = current;
      current = fault;
      for (const link of links) {
        if (fault.mode === "refuse" || fault.mode === "http-status") {
          link.client.resetAndDestroy();
          link.upstream?.destroy();
        } else if (fault.mode === "blackhole") {
          link.silenced = true;
        } else if (link.silenced && previous.mode === "blackhole") {
          link.client.resetAndDestroy();
          link.upstream?.destroy();
        }
      }
    },
    stats: () => ({ ...stats }),
    stop() {
      for (const link of links) {
        link.client.destroy();
        link.upstream?.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads up to the end of the first request's headers, answers `status` with a JSON error, then closes. */
function answerWithStatus(client: Socket, fault: { status: number; retryAfterSeconds?: number }): void {
  let head = "";
  client.on("data", (chunk: Buffer) => {
    if (head.includes("\r\n\r\n")) return;
    head += chunk.toString("latin1");
    if (!head.includes("\r\n\r\n")) return;
    const body = JSON.stringify({
      error: { message: `fault proxy: injected ${fault.status}`, type: "server_error", code: null },
    });
    const lines = [
      `HTTP/1.1 ${fault.status} Injected Fault`,
      "content-type: application/json",
      `content-length: ${Buffer.byteLength(body)}`,
      "connection: close",
      ...(fault.retryAfterSeconds !== undefined ? [`retry-after: ${fault.retryAfterSeconds}`] : []),
    ];
    client.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  });
}

function splitHostPort(address: string): [string, string] {
  const at = address.lastIndexOf(":");
  const host = address.slice(0, at);
  if (at < 1 || !/^\d+$/.test(address.slice(at + 1))) throw new Error(`not host:port: ${address}`);
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "::1") {
    throw new Error(`the fault proxy only forwards to loopback, not ${host}`);
  }
  return [host, address.slice(at + 1)];
}
