// An echoing OpenAI Realtime upstream for bench:voice. Unlike the test stand-in
// (test/standins/realtime-upstream.ts), which scripts whole turns, it answers every
// `input_audio_buffer.append` at once with a `response.output_audio.delta` carrying the same audio, and
// names the delta `echo.<the append's event_id>` so the client can pair each frame with its echo.
// Nothing else happens: no VAD, no turns, no transcripts.
//
// The handshake is OpenAI's: GET /v1/realtime?model=<m> with `Authorization: Bearer <key>` (no key: 401,
// no model: 400), then `session.created`; `session.update` is merged and answered with `session.updated`.
// GET /v1/models answers 200 (the Worker's AI health probe). GET /__stats counts connections and frames.
//
// Run as its own process (`node bench/voice/echo-upstream.ts [--port N]`): it prints {"url", "port"} as
// one JSON line on stdout, and exits on SIGTERM/SIGINT or as soon as its stdin closes, so it never outlives
// the benchmark that started it, whatever way that one ends.
import { createServer, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type WebSocket, WebSocketServer } from "ws";
import { closeServer, listenOnFreePort, sendJson } from "../../scripts/local-stack/http.ts";
import { mergeSession, newId, newSession, type SessionPatch, serverEvent } from "../../src/voice/protocol.ts";

/** Prefix of the echo's event_id; the rest is the append's own event_id. */
export const ECHO_PREFIX = "echo.";

export interface EchoStats {
  /** Upgrades accepted, and refused (bad key or no model). */
  connections: number;
  refused: number;
  open: number;
  /** Authorization headers seen, distinct. */
  keys: string[];
  /** Connections that ended without a close frame (1006: the other side vanished). */
  dropped: number;
  appends: number;
  echoes: number;
  /** Client events that were not appends or session updates, by type. */
  other: Record<string, number>;
  /** The last 500 connections: opened and closed (ms since the server started), appends, close code. */
  log: { id: number; opened: number; closed: number | null; appends: number; code: number | null }[];
}

export interface EchoUpstream {
  /** The Realtime base, as OPENAI_BASE_URL: http://127.0.0.1:<port>/v1 */
  baseUrl: string;
  /** ws://127.0.0.1:<port>/v1/realtime?model=gpt-realtime, for a client that dials it directly. */
  realtimeUrl: string;
  port: number;
  stats(): EchoStats;
  stop(): Promise<void>;
}

export async function startEchoUpstream(port = 0): Promise<EchoUpstream> {
  const stats: EchoStats = {
    connections: 0,
    refused: 0,
    open: 0,
    keys: [],
    dropped: 0,
    appends: 0,
    echoes: 0,
    other: {},
    log: [],
  };
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    if (request.method === "GET" && path === "/v1/models") {
      return sendJson(response, 200, { object: "list", data: [{ id: "gpt-realtime", object: "model" }] });
    }
    if (request.method === "GET" && path === "/__stats") return sendJson(response, 200, stats);
    sendJson(response, 404, { error: { message: `no route ${request.method} ${path}` } });
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? "/", "http://x");
    const auth = request.headers.authorization ?? "";
    const refusal =
      url.pathname !== "/v1/realtime"
        ? "404 Not Found"
        : !/^Bearer \S+/.test(auth)
          ? "401 Unauthorized"
          : !url.searchParams.get("model")
            ? "400 Bad Request"
            : undefined;
    if (refusal) {
      stats.refused++;
      socket.end(`HTTP/1.1 ${refusal}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    if (!stats.keys.includes(auth)) stats.keys.push(auth);
    wss.handleUpgrade(request, socket, head, (ws) => serve(ws, url.searchParams.get("model") as string, stats));
  });
  const bound = port ? await listen(server, port) : await listenOnFreePort(server);
  return {
    baseUrl: `http://127.0.0.1:${bound}/v1`,
    realtimeUrl: `ws://127.0.0.1:${bound}/v1/realtime?model=gpt-realtime`,
    port: bound,
    stats: () => structuredClone(stats),
    stop: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await closeServer(server);
    },
  };
}

const t0 = performance.now();

function serve(ws: WebSocket, model: string, stats: EchoStats): void {
  stats.connections++;
  stats.open++;
  const entry = {
    id: stats.connections,
    opened: Math.round(performance.now() - t0),
    closed: null as number | null,
    appends: 0,
    code: null as number | null,
  };
  stats.log.push(entry);
  if (stats.log.length > 500) stats.log.shift();
  let session = newSession(model);
  const responseId = newId("resp");
  const itemId = newId("item");
  const send = (event: object) => ws.send(JSON.stringify(event));
  send(serverEvent("session.created", { session }));
  ws.on("close", (code) => {
    stats.open--;
    if (code === 1006) stats.dropped++;
    Object.assign(entry, { closed: Math.round(performance.now() - t0), code });
  });
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    let event: { type?: string; event_id?: string; audio?: string; session?: SessionPatch };
    try {
      event = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (event.type === "input_audio_buffer.append" && typeof event.audio === "string") {
      stats.appends++;
      entry.appends++;
      send({
        type: "response.output_audio.delta",
        event_id: `${ECHO_PREFIX}${event.event_id ?? newId("event")}`,
        response_id: responseId,
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        delta: event.audio,
      });
      stats.echoes++;
    } else if (event.type === "session.update" && event.session) {
      session = mergeSession(session, event.session);
      send(serverEvent("session.updated", { session }));
    } else {
      const type = String(event.type);
      stats.other[type] = (stats.other[type] ?? 0) + 1;
    }
  });
}

function listen(server: ReturnType<typeof createServer>, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(port));
  });
}

// As a process of its own (see the header).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: "string", default: "0" } } });
  const echo = await startEchoUpstream(Number(values.port));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void echo.stop().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, stop);
  process.stdin.on("end", stop).on("close", stop).on("error", stop).resume();
  process.stdout.write(`${JSON.stringify({ url: echo.baseUrl, port: echo.port, pid: process.pid })}\n`);
}
