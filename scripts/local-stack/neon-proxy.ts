import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { closeServer, createLocalServer, listenOnFreePort, sendJson } from "./http.ts";
import { createNeonSqlHandler } from "./neon-sql.ts";
import {
  DEFAULT_SESSION_LIMITS,
  fatalError,
  protocolWatcher,
  SessionGate,
  type SessionLimits,
} from "./session-gate.ts";

export interface NeonProxy {
  /** "127.0.0.1:PORT": the Worker's NEON_LOCAL_PROXY. */
  hostPort: string;
  stop(): Promise<void>;
}

export interface NeonProxyOptions {
  /** "host:port" of the Postgres to serve; the only address the proxy will dial. */
  postgresAddress: string;
  statementTimeoutMs?: number;
  /** Give one connection at a time the backend, transaction by transaction (for PGlite). */
  serialiseSessions?: boolean;
  /** With serialiseSessions: how long a connection may wait, or idle in a transaction (tests shorten them). */
  sessionLimits?: Partial<SessionLimits>;
}

const CONNECT_TIMEOUT_MS = 5_000;
// Stop reading from Postgres while this much is still queued for the WebSocket client.
const MAX_BUFFERED_BYTES = 1024 * 1024;
// Postgres closes the connection after a client's Terminate ('X') message; PGlite's socket server does
// not, and the Neon driver waits for that close (Client.end() would never resolve), so the proxy closes it.
const TERMINATE_MESSAGE = Buffer.from([0x58, 0, 0, 0, 4]);

/**
 * One local HTTP server standing in for Neon: the WebSocket-to-TCP proxy at /v1?address=host:port
 * (what the driver's Pool/Client dial through `wsProxy`) and the HTTP SQL endpoint at POST /sql
 * (what `neon()` posts to through `fetchEndpoint`).
 */
export async function startNeonProxy(options: NeonProxyOptions): Promise<NeonProxy> {
  const [host, port] = splitAddress(options.postgresAddress);
  const bridges = new Set<Socket>();
  const limits = { ...DEFAULT_SESSION_LIMITS, ...options.sessionLimits };
  const serialised = options.serialiseSessions ? { gate: new SessionGate(limits.waitMs), limits } : undefined;
  const webSockets = new WebSocketServer({ noServer: true });
  const server = createLocalServer();

  server.on("upgrade", (request, socket: Duplex, head) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (url.pathname !== "/v1") return refuseUpgrade(socket, "404 Not Found", "use /v1?address=host:port");
    const address = url.searchParams.get("address");
    if (address !== options.postgresAddress) {
      return refuseUpgrade(socket, "403 Forbidden", `this proxy only reaches ${options.postgresAddress}`);
    }
    webSockets.handleUpgrade(request, socket, head, (ws) => {
      const tcp = bridge(ws, host, port, serialised);
      bridges.add(tcp);
      tcp.on("close", () => bridges.delete(tcp));
    });
  });

  // The SQL endpoint's pools dial this server's own WebSocket proxy, so it needs the port first.
  const hostPort = `127.0.0.1:${await listenOnFreePort(server)}`;
  const sql = createNeonSqlHandler({
    postgresAddress: options.postgresAddress,
    proxyHostPort: hostPort,
    statementTimeoutMs: options.statementTimeoutMs ?? 30_000,
  });
  server.on("request", (request, response) => {
    const { pathname } = new URL(request.url ?? "/", "http://localhost");
    if (pathname === "/sql" && request.method === "POST") void sql.handle(request, response);
    else sendJson(response, 404, { message: "not found: use POST /sql or a WebSocket to /v1?address=host:port" });
  });

  let stopping: Promise<void> | undefined;
  return {
    hostPort,
    stop() {
      stopping ??= (async () => {
        await sql.close();
        for (const tcp of bridges) tcp.destroy();
        for (const ws of webSockets.clients) ws.terminate();
        webSockets.close();
        await closeServer(server);
      })();
      return stopping;
    },
  };
}

/**
 * Pipes raw bytes both ways between a WebSocket client and a TCP connection; each side closes the other.
 * With a gate, the client's bytes wait until this connection holds the backend.
 */
function bridge(
  ws: WebSocket,
  host: string,
  port: number,
  serialised?: { gate: SessionGate; limits: SessionLimits },
): Socket {
  const tcp = connect({ host, port });
  tcp.setTimeout(CONNECT_TIMEOUT_MS, () => tcp.destroy(new Error(`connecting to ${host}:${port} timed out`)));
  tcp.once("connect", () => tcp.setTimeout(0));
  const gate = serialised?.gate;
  const self = {};
  let closed = false;
  let fatalSeen = false;
  let idleInTransaction: NodeJS.Timeout | undefined;
  let turn = Promise.resolve();

  // Ends both sides, once. Ending the backend connection makes pglite-socket roll back its open transaction.
  const shut = (fatal?: Buffer) => {
    if (closed) return;
    closed = true;
    clearTimeout(idleInTransaction);
    gate?.leave(self);
    if (fatal && ws.readyState === ws.OPEN) ws.send(fatal);
    ws.close();
    tcp.end();
  };

  const watcher = serialised
    ? protocolWatcher({
        ready(status) {
          clearTimeout(idleInTransaction);
          if (status === "I") return serialised.gate.release(self);
          // In a transaction and waiting for the client (pg sends one query at a time), while every other
          // connection waits behind it: a client that went quiet must not hold PGlite for good.
          const limit = serialised.limits.idleInTransactionMs;
          idleInTransaction = setTimeout(
            () => shut(fatalError("25P03", `terminating connection due to idle-in-transaction timeout (${limit} ms)`)),
            limit,
          );
        },
        fatal() {
          fatalSeen = true;
        },
      })
    : undefined;

  tcp.on("data", (chunk) => {
    watcher?.serverSent(chunk);
    ws.send(chunk, () => {
      if (ws.bufferedAmount < MAX_BUFFERED_BYTES) tcp.resume();
    });
    if (ws.bufferedAmount >= MAX_BUFFERED_BYTES) tcp.pause();
    // Postgres closes the connection after a FATAL error; PGlite's socket server does not.
    if (fatalSeen) shut();
  });
  const forward = (bytes: Buffer) => {
    watcher?.clientSent(bytes);
    if (!tcp.write(bytes)) ws.pause();
    if (bytes.equals(TERMINATE_MESSAGE)) tcp.end();
  };
  ws.on("message", (data: RawData) => {
    const bytes = data as Buffer;
    clearTimeout(idleInTransaction);
    if (!gate) return forward(bytes);
    // Keep this connection's messages in order while it waits for its turn.
    turn = turn
      .then(async () => {
        // A closed connection must never take the gate: nothing would release it again.
        if (closed) return;
        await gate.acquire(self);
        if (closed) return gate.leave(self);
        forward(bytes);
      })
      .catch((error: Error) => shut(fatalError("57P03", error.message)));
  });
  tcp.on("drain", () => ws.resume());

  tcp.on("error", () => ws.terminate());
  tcp.on("close", () => shut());
  ws.on("error", () => tcp.destroy());
  ws.on("close", () => shut());
  return tcp;
}

function refuseUpgrade(socket: Duplex, status: string, message: string): void {
  // Node drops its own error listener from an upgraded socket: a client reset here would crash the process.
  socket.on("error", () => {});
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${message}\n`);
}

function splitAddress(address: string): [string, number] {
  const match = /^(.+):(\d+)$/.exec(address);
  if (!match) throw new Error(`Postgres address must be host:port, got "${address}"`);
  // URL hostnames keep IPv6 brackets ("[::1]"); sockets want them off.
  return [match[1]!.replace(/^\[(.*)\]$/, "$1"), Number(match[2])];
}
