import type { Config } from "../config.ts";
import { UpstreamError } from "../errors.ts";

const DEFAULT_BASE_URL = "https://api.openai.com/v1";
const CONNECT_TIMEOUT_MS = 10_000;

export interface UpstreamSocket {
  send(event: object): void;
  close(code?: number, reason?: string): void;
}

export interface UpstreamHandlers {
  onEvent(event: { type: string } & Record<string, unknown>): void;
  /** The upstream went away (not when we closed it ourselves). */
  onDrop(info: { code: number; reason: string }): void;
}

/** What a session needs to reach OpenAI Realtime; the Worker, which reads the configuration, hands it over. */
export interface UpstreamSettings {
  apiKey: string;
  baseUrl: string | undefined;
  model: string;
  refreshSeconds: number;
}

/** Upstream settings when OPENAI_API_KEY is set (upstream mode), else undefined (local mode). */
export const upstreamSettings = (config: Config): UpstreamSettings | undefined =>
  config.OPENAI_API_KEY
    ? {
        apiKey: config.OPENAI_API_KEY,
        baseUrl: config.OPENAI_BASE_URL,
        model: config.VOICE_REALTIME_MODEL,
        refreshSeconds: config.VOICE_UPSTREAM_REFRESH_SECONDS,
      }
    : undefined;

/** The Realtime WebSocket URL for OPENAI_BASE_URL (fetch dials ws over http(s) with an Upgrade header). */
export function realtimeUrl(settings: Pick<UpstreamSettings, "baseUrl" | "model">): string {
  const url = new URL(`${(settings.baseUrl ?? DEFAULT_BASE_URL).replace(/\/$/, "")}/realtime`);
  url.searchParams.set("model", settings.model);
  return url.toString();
}

/** Opens the upstream Realtime socket; the key never leaves the Worker. Throws a clear UpstreamError. */
export async function connectUpstream(settings: UpstreamSettings, handlers: UpstreamHandlers): Promise<UpstreamSocket> {
  let response: Response;
  // The deadline covers the handshake only: a signal left on the request would later cut the open socket.
  const handshake = new AbortController();
  const timer = setTimeout(() => handshake.abort(), CONNECT_TIMEOUT_MS);
  try {
    response = await fetch(realtimeUrl(settings), {
      headers: { upgrade: "websocket", authorization: `Bearer ${settings.apiKey}` },
      signal: handshake.signal,
    });
  } catch (error) {
    throw new UpstreamError("UPSTREAM_UNAVAILABLE", "OpenAI Realtime could not be reached.", {
      transient: true,
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
  const socket = response.webSocket;
  if (response.status !== 101 || !socket) {
    const permanent = response.status === 401 || response.status === 403;
    throw new UpstreamError(
      "UPSTREAM_UNAVAILABLE",
      permanent
        ? `OpenAI Realtime refused the API key (${response.status}): check OPENAI_API_KEY.`
        : `OpenAI Realtime refused the connection (${response.status}).`,
      { transient: !permanent },
    );
  }
  socket.accept();
  let closing = false;
  socket.addEventListener("message", (message) => {
    if (typeof message.data !== "string") return;
    try {
      handlers.onEvent(JSON.parse(message.data));
    } catch {
      // A frame we cannot read is not worth the session: skip it.
    }
  });
  socket.addEventListener("close", (event) => {
    if (!closing) handlers.onDrop({ code: event.code, reason: event.reason });
  });
  return {
    send: (event) => socket.send(JSON.stringify(event)),
    close: (code = 1000, reason = "closing") => {
      closing = true;
      try {
        socket.close(code, reason);
      } catch {
        // Already closed.
      }
    },
  };
}
