import { DurableObject } from "cloudflare:workers";
import { createDb } from "../src/db/client.ts";
import { apiErrorOf } from "../src/db/unavailable.ts";
import { type Env, requireConfig } from "../src/env.ts";
import { toApiError } from "../src/errors.ts";
import { type MetricEvent, recordMetrics } from "../src/metrics/record.ts";
import { CLOSE_CREDENTIAL_ENDED, credentialOf, SOCKET_RECHECK_MS, socketRefusal } from "../src/sockets/credential.ts";
import { mintTicket, redeemTicket, ticketRefused } from "../src/sockets/tickets.ts";
import { AudioError, decodeAudioPayload, durationMs } from "../src/voice/audio.ts";
import { AudioPacer, floodEvent, readFrame } from "../src/voice/flood.ts";
import { LocalMode } from "../src/voice/local-mode.ts";
import { type ClientEvent, errorEvent, mergeSession, parseClientEvent, serverEvent } from "../src/voice/protocol.ts";
import type { Relay } from "../src/voice/relay.ts";
import { relaySession } from "../src/voice/relay-session.ts";
import {
  clientMessage,
  type Identity,
  logVoiceFailure,
  type SessionIo,
  type State,
} from "../src/voice/session-state.ts";
import { markVoiceSession, preferredSession } from "../src/voice/sessions.ts";
import { type UpstreamSettings, upstreamSettings } from "../src/voice/upstream.ts";
import { AudioInSync } from "../src/voice/usage-sync.ts";

// Headers only the Worker sets (a Durable Object is reachable only through it).
export const VOICE_USER_HEADER = "x-voiceassist-user";
export const VOICE_SESSION_HEADER = "x-voiceassist-voice-session";
export const VOICE_CONVERSATION_HEADER = "x-voiceassist-conversation";
/** When the Worker received the upgrade request (ms since the epoch): the object cannot see that moment. */
export const VOICE_UPGRADE_AT_HEADER = "x-voiceassist-upgrade-at";

const CLOSE_POLICY = 1008;
const CLOSE_NORMAL = 1000;
const TOUCH_EVERY_MS = 1_000;

/**
 * One realtime voice session, speaking the OpenAI Realtime (GA) protocol over a hibernatable WebSocket.
 * This shell owns the socket, the stored state and the alarm; local mode (src/voice/local-mode.ts) and the
 * upstream relay (src/voice/relay-session.ts) do the talking.
 */
export class VoiceSession extends DurableObject<Env> {
  private state: State | undefined;
  private upstream: UpstreamSettings | null | undefined;
  private inbox: Promise<void> = Promise.resolve();
  private touchedAt = 0;
  /** Upstream mode: the connection to OpenAI Realtime (the object stays awake while it is open). */
  private relay: Relay | undefined;
  /** The connect under way until its session.created goes out (voice_connect_seconds). */
  private connecting: { mode: "local" | "upstream"; upgradeAt: number } | undefined;
  private readonly pacer = new AudioPacer();
  private readonly io: SessionIo = {
    env: this.env,
    ctx: this.ctx,
    state: () => this.state as State,
    send: (event) => this.send(event),
    save: () => this.save(),
    metric: (event) => this.metric(event),
    logFailure: (message, code, error, fields) => logVoiceFailure(this.state?.sessionId, message, code, error, fields),
  };
  private readonly audioIn = new AudioInSync(() => createDb(requireConfig(this.env)));
  private readonly local = new LocalMode(this.io, this.audioIn);

  /**
   * Upstream mode's settings, from the Worker that read the configuration (kept in memory only, never
   * stored: they hold the API key). Without them the object reads its own configuration.
   */
  async prepare(settings: UpstreamSettings | undefined): Promise<void> {
    this.upstream = settings ?? null;
  }

  /** A single-use ticket for clients that cannot send headers; redeemed by the next connect. */
  async mintTicket(identity: Identity): Promise<{ ticket: string; expiresAt: number }> {
    return mintTicket<Identity>(this.ctx.storage, identity);
  }

  /** Resets the object as an eviction with its sockets closed does (POST /api/admin/chaos/evict, for chaos experiments). */
  evict(): void {
    this.ctx.abort("evicted");
  }

  override async fetch(request: Request): Promise<Response> {
    const who = await this.caller(request);
    if (!who) return ticketRefused(request);
    const config = requireConfig(this.env);
    const state = await this.load();
    if (state && this.ctx.getWebSockets().length > 0) {
      return new Response("This voice session already has a client.", { status: 409 });
    }
    const mode = this.upstreamMode() ? "upstream" : "local";
    const upgradeAt = Number(request.headers.get(VOICE_UPGRADE_AT_HEADER) ?? Number.NaN);
    this.connecting = Number.isFinite(upgradeAt) ? { mode, upgradeAt } : undefined;
    const session = state?.session ?? (await preferredSession(config, createDb(config), who.userId, mode));
    if (!state) this.metric({ name: "voice_sessions_started_total", labels: { mode }, value: 1 });
    this.state = state ?? {
      ...who,
      session,
      items: [],
      startedAt: Date.now(),
      audioMs: 0,
      bufferStartMs: 0,
      bufferChunks: 0,
    };
    // The client now connected is the one whose credential counts.
    this.state.credential = who.credential;
    await this.save();
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    const upstream = this.upstreamMode();
    if (upstream) {
      // The upstream's session.created reaches the client through the relay.
      try {
        this.relay = relaySession(
          { ...this.io, closeSockets: (code, reason) => this.closeSockets(code, reason), end: (r) => this.end(r) },
          upstream,
        );
        await this.relay.start();
      } catch (error) {
        const failure = toApiError(error);
        this.send(errorEvent({ type: "server_error", code: "upstream_unavailable", message: failure.message }));
        server.close(1011, "upstream unavailable");
        await this.end("upstream_failed");
        return new Response(null, { status: 101, webSocket: client });
      }
    } else {
      this.send(serverEvent("session.created", { session: this.state.session }));
    }
    await markVoiceSession(createDb(config), who.sessionId, { status: "active" });
    await this.ctx.storage.setAlarm(Date.now() + Math.min(config.VOICE_IDLE_TIMEOUT_SECONDS * 1000, SOCKET_RECHECK_MS));
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    const headers = offered.includes("realtime") ? { "sec-websocket-protocol": "realtime" } : undefined;
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    await this.load();
    const frame = readFrame(data);
    if (!frame.ok) return this.send(frame.error);
    const parsed = parseClientEvent(frame.text);
    if (!parsed.ok) return this.send(parsed.error);
    await this.touch();
    // One event at a time, in arrival order: a commit must be done before the response.create after it.
    const handled = this.inbox.then(() => this.handle(ws, parsed.event));
    this.inbox = handled.catch(() => undefined);
    try {
      await handled;
    } catch (error) {
      const failure = apiErrorOf(error);
      const refusal = errorEvent({
        type: failure.code === "INTERNAL" ? "server_error" : "invalid_request_error",
        code: failure.code.toLowerCase(),
        message: clientMessage(failure),
        event_id: parsed.event.event_id ?? null,
      });
      this.io.logFailure("voice event failed", failure.code, error, {
        event: parsed.event.type,
        error_event_id: refusal.event_id,
      });
      this.send(refusal);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    ws.close(code === 1005 ? CLOSE_NORMAL : code, "closing");
    this.relay?.close();
    this.relay = undefined;
    await this.end("client_closed");
  }

  override async alarm(): Promise<void> {
    const state = await this.load();
    if (!state || state.ended) return;
    // No socket, yet none closed (that ends the session): an eviction, deploy or crash dropped the client, which
    // comes back as a new session. Ended now rather than left `active` until the idle timeout.
    if (this.ctx.getWebSockets().length === 0) return this.end("client_closed");
    const config = requireConfig(this.env);
    const refusal = await socketRefusal(config, state.userId, state.credential);
    if (refusal) return this.endForCredential(refusal);
    const now = Date.now();
    const last = (await this.ctx.storage.get<number>("lastActivity")) ?? state.startedAt;
    const expired = now >= state.startedAt + config.VOICE_MAX_SESSION_SECONDS * 1000;
    const idle = now >= last + config.VOICE_IDLE_TIMEOUT_SECONDS * 1000;
    if (expired || idle) {
      const reason = expired ? "max_duration" : "idle_timeout";
      this.send(
        errorEvent({
          type: "session_expired",
          code: reason,
          message: expired
            ? `The session reached VOICE_MAX_SESSION_SECONDS (${config.VOICE_MAX_SESSION_SECONDS} s).`
            : `No activity for VOICE_IDLE_TIMEOUT_SECONDS (${config.VOICE_IDLE_TIMEOUT_SECONDS} s).`,
        }),
      );
      this.closeSockets(CLOSE_NORMAL, reason);
      await this.end(reason);
      return;
    }
    await this.ctx.storage.setAlarm(
      Math.min(
        last + config.VOICE_IDLE_TIMEOUT_SECONDS * 1000,
        state.startedAt + config.VOICE_MAX_SESSION_SECONDS * 1000,
        now + SOCKET_RECHECK_MS,
      ),
    );
  }

  /** The credential the client connected with no longer admits it: told why (as OpenAI ends a session), closed. */
  private async endForCredential(reason: string): Promise<void> {
    this.send(errorEvent({ code: "session_expired", message: reason }));
    this.closeSockets(CLOSE_CREDENTIAL_ENDED, "credential ended");
    this.relay?.close();
    this.relay = undefined;
    await this.end("credential_ended");
  }

  private async handle(ws: WebSocket, event: ClientEvent): Promise<void> {
    if (event.type === "input_audio_buffer.append") return this.append(ws, event.audio, event.event_id);
    if (!this.relay) return this.local.handle(event);
    // The relay sends the update up; the copy here is what a reconnect restores.
    if (event.type === "session.update") {
      const state = this.state as State;
      state.session = mergeSession(state.session, event.session);
    }
    return this.relay.fromClient(event);
  }

  /** Checks and paces audio in both modes; upstream keeps the buffer, locally the session does. */
  private async append(ws: WebSocket, audio: string, eventId: string | undefined): Promise<void> {
    const state = this.state as State;
    const format = state.session.audio.input.format;
    let bytes: Uint8Array;
    try {
      bytes = decodeAudioPayload(audio, format);
    } catch (error) {
      if (!(error instanceof AudioError)) throw error;
      return this.send(
        errorEvent({ code: error.code, message: error.message, param: error.param, event_id: eventId ?? null }),
      );
    }
    const ms = durationMs(bytes.length, format);
    const pace = this.pacer.pace(ms, state, eventId);
    if (pace.verdict === "flood") {
      this.send(floodEvent());
      ws.close(CLOSE_POLICY, "audio flood: send audio at most as fast as real time");
      await this.end("audio_flood");
      return;
    }
    if (pace.verdict === "throttled") return this.send(pace.event);
    if (!this.relay) return this.local.append(bytes, ms, format, eventId);
    // Upstream mode: OpenAI buffers and detects speech; we validate, throttle and count.
    state.audioMs += ms;
    this.audioIn.syncWhenDue(state, (work) => this.ctx.waitUntil(work));
    return this.relay.fromClient({
      type: "input_audio_buffer.append",
      audio,
      ...(eventId ? { event_id: eventId } : {}),
    });
  }

  private upstreamMode(): UpstreamSettings | undefined {
    return this.upstream === undefined ? upstreamSettings(requireConfig(this.env)) : (this.upstream ?? undefined);
  }

  private async caller(request: Request): Promise<Identity | undefined> {
    const userId = request.headers.get(VOICE_USER_HEADER);
    const sessionId = request.headers.get(VOICE_SESSION_HEADER);
    if (userId && sessionId) {
      const conversationId = request.headers.get(VOICE_CONVERSATION_HEADER) || null;
      return { userId, sessionId, conversationId, credential: credentialOf(request) };
    }
    return redeemTicket<Identity>(this.ctx.storage, request);
  }

  private async load(): Promise<State | undefined> {
    this.state ??= await this.ctx.storage.get<State>("state");
    return this.state;
  }

  private async save(): Promise<void> {
    if (this.state) await this.ctx.storage.put("state", this.state);
  }

  /** Metrics go out after the event that caused them, never holding it up. */
  private metric(event: MetricEvent): void {
    this.ctx.waitUntil(recordMetrics(this.env, undefined, event));
  }

  /** Activity for the idle timeout: written at most once a second, not once per audio frame. */
  private async touch(): Promise<void> {
    const now = Date.now();
    if (now - this.touchedAt < TOUCH_EVERY_MS) return;
    this.touchedAt = now;
    await this.ctx.storage.put("lastActivity", now);
  }

  private async end(reason: string): Promise<void> {
    const state = await this.load();
    if (!state || state.ended) return;
    state.ended = true;
    await this.save();
    this.metric({ name: "voice_sessions_ended_total", labels: { reason }, value: 1 });
    this.local.turns.stop("client_cancelled");
    await this.audioIn.sync(state);
    // What was said lives in the conversation (when there is one), not here: nothing is kept after the end.
    await this.ctx.storage.deleteAll();
    await markVoiceSession(createDb(requireConfig(this.env)), state.sessionId, { status: "ended", reason });
  }

  /** Once per connect, in both modes: local sends session.created itself, upstream relays OpenAI's. */
  private connected(): void {
    if (!this.connecting) return;
    const { mode, upgradeAt } = this.connecting;
    this.connecting = undefined;
    // Worker and object may run on different machines: a clock a little behind must not give a negative time.
    const seconds = Math.max(0, Date.now() - upgradeAt) / 1000;
    this.metric({ name: "voice_connect_seconds", labels: { mode }, value: seconds });
  }

  private closeSockets(code: number, reason: string): void {
    for (const socket of this.ctx.getWebSockets()) socket.close(code, reason);
  }

  private send(event: object): void {
    const { type, error } = event as { type?: string; error?: { code?: string } };
    if (type === "session.created") this.connected();
    if (type === "error")
      this.metric({ name: "voice_errors_total", labels: { code: error?.code ?? "unknown" }, value: 1 });
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(JSON.stringify(event));
      } catch {
        // Closed meanwhile.
      }
    }
  }
}
