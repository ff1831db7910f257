import { DurableObject } from "cloudflare:workers";
import { createDb } from "../src/adapters/db/client.ts";
import { sendMessage, storeExchange } from "../src/conversations/turns.ts";
import { type Env, requireConfig } from "../src/env.ts";
import { toApiError } from "../src/errors.ts";
import { estimateTokens } from "../src/kb/chunk.ts";
import { costUsd, priceFor } from "../src/llm/pricing.ts";
import { type MetricEvent, recordMetrics } from "../src/metrics/record.ts";
import { describeError } from "../src/observability/errors.ts";
import { log } from "../src/observability/log.ts";
import { type AnswerEvent, answerQuestion } from "../src/rag/answer.ts";
import type { Citation } from "../src/rag/citations.ts";
import type { HistoryTurn } from "../src/rag/prompt.ts";
import { hybridSearch } from "../src/rag/search.ts";
import { recordUsage } from "../src/rag/usage.ts";
import {
  CLOSE_CREDENTIAL_ENDED,
  credentialOf,
  SOCKET_RECHECK_MS,
  type SocketCredential,
  socketRefusal,
} from "../src/realtime/credential.ts";
import { mintTicket, redeemTicket } from "../src/realtime/tickets.ts";
import { AudioError, decodeAudioPayload, durationMs } from "../src/voice/audio.ts";
import { VOICE_INSTRUCTIONS } from "../src/voice/grounding.ts";
import {
  type ClientEvent,
  errorEvent,
  type Item,
  type MessageItem,
  mergeSession,
  messageItem,
  newId,
  newResponse,
  newSession,
  parseClientEvent,
  type RealtimeResponse,
  responseUsage,
  type Session,
  serverEvent,
} from "../src/voice/protocol.ts";
import { citationMetadata, Relay, type RelayIo } from "../src/voice/relay.ts";
import { addVoiceUsage, loadPreferences, markVoiceSession, setVoiceAudioIn } from "../src/voice/sessions.ts";
import { connectUpstream, type UpstreamSettings, upstreamSettings } from "../src/voice/upstream.ts";
import { EnergyVad, type VadEvent } from "../src/voice/vad.ts";

// Headers only the Worker sets (a Durable Object is reachable only through it).
export const VOICE_USER_HEADER = "x-voiceassist-user";
export const VOICE_SESSION_HEADER = "x-voiceassist-voice-session";
export const VOICE_CONVERSATION_HEADER = "x-voiceassist-conversation";

const MAX_FRAME_CHARS = 4 * 1024 * 1024;
// Audio may run ahead of real time by this much (a client catching up after a stall); beyond it, throttled.
const AUDIO_AHEAD_MS = 10_000;
// Past twice that, the client is flooding: disconnected with a reason.
const AUDIO_FLOOD_MS = 2 * AUDIO_AHEAD_MS;
const CLOSE_POLICY = 1008;
const CLOSE_NORMAL = 1000;
// Audio seconds reach the session row at most this often (and at every commit and at the end), not per frame.
const AUDIO_SYNC_MS = 5_000;
const TOUCH_EVERY_MS = 1_000;
// Less than this is not a turn (OpenAI refuses commits under 100 ms too).
const MIN_COMMIT_MS = 100;

interface Identity {
  userId: string;
  sessionId: string;
  conversationId: string | null;
  /** What the client was admitted with, checked again every SOCKET_RECHECK_MS. */
  credential?: SocketCredential;
}

/** What must survive hibernation; audio of the turn being spoken is stored beside it, chunk by chunk. */
interface State extends Identity {
  session: Session;
  items: Item[];
  startedAt: number;
  /** Audio received, ms: time base of VAD events and of the flood check. */
  audioMs: number;
  /** Where the uncommitted buffer starts, ms. */
  bufferStartMs: number;
  bufferChunks: number;
  ended?: boolean;
}

/**
 * One realtime voice session, speaking the OpenAI Realtime (GA) protocol over a hibernatable WebSocket.
 * Local mode (no OPENAI_API_KEY): text turns answered from the knowledge base, audio buffered with server
 * VAD; speech needs a transcription provider, so an audio-only turn ends with a clear error.
 */
export class VoiceSession extends DurableObject<Env> {
  private state: State | undefined;
  private vad: EnergyVad | undefined;
  private vadOffsetMs = 0;
  private speechItemId: string | undefined;
  private running: { response: RealtimeResponse; abort: AbortController } | undefined;
  private upstream: UpstreamSettings | null | undefined;
  private inbox: Promise<void> = Promise.resolve();
  private touchedAt = 0;
  /** Upstream mode: the connection to OpenAI Realtime (the object stays awake while it is open). */
  private relay: Relay | undefined;
  private audioOutMs = 0;
  /** Audio refused for arriving too fast: it still counts towards the flood limit. */
  private droppedMs = 0;
  private audioSyncedAt = 0;

  /** A single-use ticket for clients that cannot send headers; redeemed by the next connect. */
  /**
   * Upstream mode's settings, from the Worker that read the configuration (kept in memory only, never
   * stored: they hold the API key). Without them the object reads its own configuration.
   */
  async prepare(settings: UpstreamSettings | undefined): Promise<void> {
    this.upstream = settings ?? null;
  }

  async mintTicket(identity: Identity): Promise<{ ticket: string; expiresAt: number }> {
    return mintTicket<Identity>(this.ctx.storage, identity);
  }

  override async fetch(request: Request): Promise<Response> {
    const who = await this.caller(request);
    if (!who) return new Response("The ticket is unknown, used or expired: ask for a new one.", { status: 401 });
    const config = requireConfig(this.env);
    const state = await this.load();
    if (state && this.ctx.getWebSockets().length > 0) {
      return new Response("This voice session already has a client.", { status: 409 });
    }
    const session = state?.session ?? (await this.preferredSession(who.userId));
    if (!state) {
      const mode = this.upstreamMode() ? "upstream" : "local";
      this.metric({ name: "voice_sessions_started_total", labels: { mode }, value: 1 });
    }
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
        await this.startRelay(upstream);
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
    if (typeof data !== "string") {
      return this.send(
        errorEvent({
          code: "invalid_frame",
          message:
            "Binary frames are not accepted: send JSON text events (audio as base64 in input_audio_buffer.append).",
        }),
      );
    }
    if (data.length > MAX_FRAME_CHARS) {
      return this.send(
        errorEvent({
          code: "frame_too_large",
          message: `Frames are limited to ${MAX_FRAME_CHARS} characters: send audio in smaller chunks.`,
        }),
      );
    }
    const parsed = parseClientEvent(data);
    if (!parsed.ok) return this.send(parsed.error);
    await this.touch();
    // One event at a time, in arrival order: a commit must be done before the response.create after it.
    const handled = this.inbox.then(() => this.handle(ws, parsed.event));
    this.inbox = handled.catch(() => undefined);
    try {
      await handled;
    } catch (error) {
      const failure = toApiError(error);
      const refusal = errorEvent({
        type: failure.code === "INTERNAL" ? "server_error" : "invalid_request_error",
        code: failure.code.toLowerCase(),
        message: clientMessage(failure),
        event_id: parsed.event.event_id ?? null,
      });
      this.logFailure("voice event failed", failure.code, error, {
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
      for (const socket of this.ctx.getWebSockets()) socket.close(CLOSE_NORMAL, reason);
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
    for (const socket of this.ctx.getWebSockets()) socket.close(CLOSE_CREDENTIAL_ENDED, "credential ended");
    this.relay?.close();
    this.relay = undefined;
    await this.end("credential_ended");
  }

  private async handle(ws: WebSocket, event: ClientEvent): Promise<void> {
    const state = this.state as State;
    if (this.relay && event.type !== "input_audio_buffer.append") {
      if (event.type === "session.update") state.session = mergeSession(state.session, event.session);
      return this.relay.fromClient(event);
    }
    switch (event.type) {
      case "session.update":
        state.session = mergeSession(state.session, event.session);
        this.vad = undefined;
        await this.save();
        return this.send(serverEvent("session.updated", { session: state.session }));
      case "input_audio_buffer.append":
        return this.append(ws, event.audio, event.event_id);
      case "input_audio_buffer.commit":
        return this.commit(event.event_id);
      case "input_audio_buffer.clear":
        await this.clearBuffer();
        return this.send(serverEvent("input_audio_buffer.cleared", {}));
      case "conversation.item.create": {
        const item = {
          ...event.item,
          id: event.item.id ?? newId("item"),
          object: "realtime.item",
          status: "completed",
        } as Item;
        return this.addItem(item);
      }
      case "conversation.item.retrieve": {
        const item = state.items.find((i) => i.id === event.item_id);
        if (!item) return this.send(this.missingItem(event.item_id, event.event_id));
        return this.send(serverEvent("conversation.item.retrieved", { item }));
      }
      case "conversation.item.delete": {
        const before = state.items.length;
        state.items = state.items.filter((i) => i.id !== event.item_id);
        if (state.items.length === before) return this.send(this.missingItem(event.item_id, event.event_id));
        await this.save();
        return this.send(serverEvent("conversation.item.deleted", { item_id: event.item_id }));
      }
      case "conversation.item.truncate": {
        if (!state.items.some((i) => i.id === event.item_id))
          return this.send(this.missingItem(event.item_id, event.event_id));
        // Local mode sends no audio, so there is nothing unheard to cut; the acknowledgement keeps clients in step.
        return this.send(
          serverEvent("conversation.item.truncated", {
            item_id: event.item_id,
            content_index: event.content_index,
            audio_end_ms: event.audio_end_ms,
          }),
        );
      }
      case "response.create":
        return this.respond(event.response);
      case "response.cancel":
        if (!this.running) {
          return this.send(
            errorEvent({
              code: "response_cancel_not_active",
              message: "There is no response in progress to cancel.",
              event_id: event.event_id ?? null,
            }),
          );
        }
        this.running.abort.abort("client_cancelled");
        return;
    }
  }

  /** Buffers audio, throttling a client that sends faster than real time, and runs server VAD over it. */
  private async append(ws: WebSocket, audio: string, eventId: string | undefined): Promise<void> {
    const state = this.state as State;
    const config = requireConfig(this.env);
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
    const ahead = state.audioMs + this.droppedMs + ms - (Date.now() - state.startedAt);
    if (ahead > AUDIO_FLOOD_MS) {
      this.send(errorEvent({ code: "audio_flood", message: "Audio arrives far faster than real time: disconnected." }));
      ws.close(CLOSE_POLICY, "audio flood: send audio at most as fast as real time");
      await this.end("audio_flood");
      return;
    }
    if (ahead > AUDIO_AHEAD_MS) {
      this.droppedMs += ms;
      return this.send(
        errorEvent({
          code: "audio_rate_exceeded",
          message: `Audio arrives faster than real time (${Math.round(ahead)} ms ahead): this chunk was dropped; slow down.`,
          event_id: eventId ?? null,
        }),
      );
    }
    // Upstream, OpenAI keeps the buffer; here only local mode holds one.
    if (!this.relay && state.audioMs + ms - state.bufferStartMs > config.VOICE_MAX_BUFFER_SECONDS * 1000) {
      return this.send(
        errorEvent({
          code: "input_audio_buffer_full",
          message: `The input buffer holds VOICE_MAX_BUFFER_SECONDS (${config.VOICE_MAX_BUFFER_SECONDS} s): commit or clear it.`,
          event_id: eventId ?? null,
        }),
      );
    }
    if (this.relay) {
      // Upstream mode: OpenAI buffers and detects speech; we validate, throttle and count.
      state.audioMs += ms;
      // Bookkeeping never holds audio up: the row catches up in the background.
      if (Date.now() - this.audioSyncedAt > AUDIO_SYNC_MS) this.ctx.waitUntil(this.syncAudio());
      return this.relay.fromClient({
        type: "input_audio_buffer.append",
        audio,
        ...(eventId ? { event_id: eventId } : {}),
      });
    }
    await this.ctx.storage.put(`audio:${state.bufferChunks}`, bytes);
    state.bufferChunks++;
    state.audioMs += ms;
    // Bookkeeping never holds audio up: the row catches up in the background.
    if (Date.now() - this.audioSyncedAt > AUDIO_SYNC_MS) this.ctx.waitUntil(this.syncAudio());
    const detection = state.session.audio.input.turn_detection;
    if (!detection) return this.save();
    if (!this.vad) {
      this.vad = new EnergyVad({
        threshold: detection.threshold,
        prefixPaddingMs: detection.prefix_padding_ms,
        silenceDurationMs: detection.silence_duration_ms,
      });
      // A detector made after a settings change or a wake-up counts from here: event times stay session-wide.
      this.vadOffsetMs = state.audioMs - ms;
    }
    const events: readonly VadEvent[] = this.vad.feedBytes(bytes, format);
    await this.save();
    for (const vadEvent of events) await this.onVad(vadEvent);
  }

  private async onVad(event: VadEvent): Promise<void> {
    const detection = (this.state as State).session.audio.input.turn_detection;
    if (event.type === "speech_started") {
      this.speechItemId = newId("item");
      this.send(
        serverEvent("input_audio_buffer.speech_started", {
          item_id: this.speechItemId,
          audio_start_ms: Math.round(this.vadOffsetMs + event.audio_start_ms),
        }),
      );
      // Barge-in: the user talks over the answer, so the answer stops.
      if (this.running && detection?.interrupt_response) {
        this.running.abort.abort("turn_detected");
        this.metric({ name: "voice_barge_ins_total", labels: {}, value: 1 });
        await addVoiceUsage(createDb(requireConfig(this.env)), (this.state as State).sessionId, { bargeIns: 1 });
      }
      return;
    }
    const itemId = this.speechItemId ?? newId("item");
    this.send(
      serverEvent("input_audio_buffer.speech_stopped", {
        item_id: itemId,
        audio_end_ms: Math.round(this.vadOffsetMs + event.audio_end_ms),
      }),
    );
    await this.commitAudio(itemId);
    if (detection?.create_response) await this.respond(undefined);
  }

  private async commit(eventId: string | undefined): Promise<void> {
    const state = this.state as State;
    if (state.audioMs - state.bufferStartMs < MIN_COMMIT_MS) {
      return this.send(
        errorEvent({
          code: "input_audio_buffer_commit_empty",
          message: `The input buffer holds less than ${MIN_COMMIT_MS} ms of audio: append audio before committing.`,
          event_id: eventId ?? null,
        }),
      );
    }
    await this.commitAudio(this.speechItemId ?? newId("item"));
  }

  /** Turns the buffered audio into a user item. Without a transcription provider it has no transcript. */
  private async commitAudio(itemId: string): Promise<void> {
    const state = this.state as State;
    const previous = state.items.at(-1)?.id ?? null;
    this.send(serverEvent("input_audio_buffer.committed", { item_id: itemId, previous_item_id: previous }));
    await this.syncAudio();
    await this.clearBuffer();
    this.speechItemId = undefined;
    await this.addItem({ ...messageItem("user", [{ type: "input_audio" }]), id: itemId } as Item);
  }

  private async clearBuffer(): Promise<void> {
    const state = this.state as State;
    const keys = Array.from({ length: state.bufferChunks }, (_, i) => `audio:${i}`);
    for (let i = 0; i < keys.length; i += 128) await this.ctx.storage.delete(keys.slice(i, i + 128));
    state.bufferChunks = 0;
    state.bufferStartMs = state.audioMs;
    await this.save();
  }

  private async addItem(item: Item): Promise<void> {
    const state = this.state as State;
    const previous = state.items.at(-1)?.id ?? null;
    state.items.push(item);
    await this.save();
    this.send(serverEvent("conversation.item.added", { previous_item_id: previous, item }));
    this.send(serverEvent("conversation.item.done", { previous_item_id: previous, item }));
  }

  /** Answers the last user item from the knowledge base, streaming text; citations go in the response metadata. */
  private async respond(params: Parameters<typeof newResponse>[1]): Promise<void> {
    const state = this.state as State;
    if (this.running) {
      return this.send(
        errorEvent({
          code: "conversation_already_has_active_response",
          message: "A response is in progress: wait for response.done or send response.cancel.",
        }),
      );
    }
    const question = lastUserText(state.items);
    if (question === undefined) {
      return this.send(
        errorEvent({
          code: "no_user_input",
          message: "There is no user message to answer: send conversation.item.create with input_text first.",
        }),
      );
    }
    if (question === null) {
      return this.send(
        errorEvent({
          type: "server_error",
          code: "transcription_unavailable",
          message:
            "This turn is audio only and no speech-to-text provider is configured (OPENAI_API_KEY is unset): send the text with conversation.item.create (input_text), or transcribe on the client.",
        }),
      );
    }
    const turnStarted = performance.now();
    const seconds = () => (performance.now() - turnStarted) / 1000;
    const response = newResponse(state.session, params);
    const abort = new AbortController();
    this.running = { response, abort };
    this.send(serverEvent("response.created", { response }));
    const item = { ...messageItem("assistant", [{ type: "output_text", text: "" }], "in_progress") } as MessageItem;
    const at = { response_id: response.id, item_id: item.id, output_index: 0, content_index: 0 };
    this.send(serverEvent("response.output_item.added", { response_id: response.id, output_index: 0, item }));
    // The item joins the conversation as it starts (in progress), and is done when the answer is.
    const previous = state.items.at(-1)?.id ?? null;
    this.send(serverEvent("conversation.item.added", { previous_item_id: previous, item }));
    this.send(serverEvent("response.content_part.added", { ...at, part: { type: "text", text: "" } }));
    // The answer streams in the background, so the events after it (cancel, barge-in audio) are heard.
    this.ctx.waitUntil(this.streamResponse(question, response, abort, item, at, previous, seconds));
  }

  private async streamResponse(
    question: string,
    response: RealtimeResponse,
    abort: AbortController,
    item: MessageItem,
    at: { response_id: string; item_id: string; output_index: number; content_index: number },
    previous: string | null,
    seconds: () => number,
  ): Promise<void> {
    const state = this.state as State;
    let text = "";
    let citations: Citation[] = [];
    let failure: { code: string; message: string } | undefined;
    let thrown: unknown;
    let usage = { prompt: estimateTokens(question), completion: 0 };
    try {
      for await (const event of this.answer(question, abort.signal)) {
        if (event.type === "delta") {
          if (!text) this.metric({ name: "voice_time_to_first_seconds", labels: { kind: "text" }, value: seconds() });
          text += event.text;
          this.send(serverEvent("response.output_text.delta", { ...at, delta: event.text }));
        } else if (event.type === "citations") citations = event.citations;
        else if (event.type === "error") failure = event;
        else usage = { prompt: event.answer.usage.promptTokens, completion: event.answer.usage.completionTokens };
      }
    } catch (error) {
      // Whatever throws, a started response still ends: as failed, unless the client stopped it.
      if (!abort.signal.aborted) {
        failure = toApiError(error);
        thrown = error;
      }
    } finally {
      this.running = undefined;
    }
    const refusal =
      failure &&
      errorEvent({ type: "server_error", code: failure.code.toLowerCase(), message: clientMessage(failure) });
    if (failure && refusal) {
      this.logFailure("voice response failed", failure.code, thrown, {
        response_id: response.id,
        error_event_id: refusal.event_id,
      });
    }
    const cancelled = abort.signal.aborted;
    const status = failure ? "failed" : cancelled ? "cancelled" : "completed";
    const done = {
      ...item,
      status: cancelled ? "incomplete" : "completed",
      content: [{ type: "output_text", text }],
    } as MessageItem;
    this.send(serverEvent("response.output_text.done", { ...at, text }));
    this.send(serverEvent("response.content_part.done", { ...at, part: { type: "text", text } }));
    this.send(serverEvent("response.output_item.done", { response_id: response.id, output_index: 0, item: done }));
    if (!failure) {
      state.items.push(done);
      this.send(serverEvent("conversation.item.done", { previous_item_id: previous, item: done }));
    }
    if (refusal) this.send(refusal);
    const finished = {
      ...response,
      status,
      output: [done],
      ...(status === "completed"
        ? {}
        : {
            status_details: {
              type: status,
              ...(failure ? { error: { type: "server_error", code: failure.code.toLowerCase() } } : {}),
              ...(cancelled && !failure
                ? { reason: abort.signal.reason === "turn_detected" ? "turn_detected" : "client_cancelled" }
                : {}),
            },
          }),
      usage: responseUsage({ text: usage.prompt, audio: 0 }, { text: usage.completion, audio: 0 }),
      metadata: { ...response.metadata, ...citationMetadata(citations) },
    } as RealtimeResponse & { usage: ReturnType<typeof responseUsage> };
    this.send(serverEvent("response.done", { response: finished }));
    this.metric({ name: "voice_turn_latency_seconds", labels: { outcome: status }, value: seconds() });
    // Bookkeeping after the client has its answer: a failure here is logged, never a hanging response.
    try {
      await this.save();
      await addVoiceUsage(createDb(requireConfig(this.env)), state.sessionId, {
        turns: 1,
        inputTokens: usage.prompt,
        outputTokens: usage.completion,
      });
    } catch (error) {
      this.logFailure("voice turn not recorded", toApiError(error).code, error, { response_id: response.id });
    }
  }

  /** A grounded answer: stored in the session's conversation when it has one, else from the session's own turns. */
  private answer(question: string, signal: AbortSignal): AsyncIterable<AnswerEvent> {
    const state = this.state as State;
    const config = requireConfig(this.env);
    const turn = { userId: state.userId, channel: "voice" as const, signal };
    if (state.conversationId) {
      const events = sendMessage(
        config,
        this.env,
        { ...turn, conversationId: state.conversationId },
        { content: question, clientMessageId: lastUserItemId(state.items) ?? newId("item") },
        { ctx: this.ctx },
      );
      return onlyAnswerEvents(events);
    }
    return answerQuestion(config, this.env, { ...turn, question, history: historyOf(state.items) }, { ctx: this.ctx });
  }

  /** Upstream mode: relay to OpenAI Realtime with our grounding; the tool runs here, turns are stored here. */
  private async startRelay(upstream: UpstreamSettings): Promise<void> {
    const config = requireConfig(this.env);
    const state = this.state as State;
    const db = createDb(config);
    const io: RelayIo = {
      toClient: (event) => this.send(event),
      connect: (handlers) => connectUpstream(upstream, handlers),
      search: async (query, topK) => {
        const found = await hybridSearch(
          config,
          this.env,
          { query, topK, scoreFloor: config.RAG_SCORE_FLOOR },
          { ctx: this.ctx },
        );
        return found.results.map((r, i) => ({
          index: i + 1,
          document_id: r.documentId,
          external_id: r.externalId,
          title: r.title,
          chunk_id: r.chunkId,
          page: r.page,
          snippet: r.snippet,
          score: r.score,
          text: r.text,
        }));
      },
      finished: async (exchange) => {
        const audioOutMs = Math.round(this.audioOutMs);
        this.audioOutMs = 0;
        // The client already has its response.done: a turn that cannot be recorded is logged, not thrown.
        try {
          const usage = { promptTokens: exchange.inputTokens, completionTokens: exchange.outputTokens };
          const cost = costUsd(priceFor(config, upstream.model), usage) ?? null;
          await addVoiceUsage(db, state.sessionId, {
            turns: 1,
            inputTokens: exchange.inputTokens,
            outputTokens: exchange.outputTokens,
            costUsd: cost ?? 0,
            audioOutMs,
          });
          await recordUsage(config, {
            userId: state.userId,
            conversationId: state.conversationId,
            channel: "voice",
            provider: "openai",
            model: upstream.model,
            outcome: "answered",
            usage,
            costUsd: cost,
            latencyMs: exchange.latencyMs,
            firstTokenMs: null,
          });
          if (state.conversationId && exchange.question) {
            await storeExchange(db, state.conversationId, {
              ...exchange,
              provider: "openai",
              model: upstream.model,
            });
          }
        } catch (error) {
          this.logFailure("voice turn not recorded", toApiError(error).code, error, {});
        }
      },
      observe: (fact) => {
        if ("audioOutMs" in fact) this.audioOutMs += fact.audioOutMs;
        else if ("bargeIn" in fact) {
          this.metric({ name: "voice_barge_ins_total", labels: {}, value: 1 });
          this.ctx.waitUntil(addVoiceUsage(db, state.sessionId, { bargeIns: 1 }));
        } else if ("turn" in fact) {
          this.metric({ name: "voice_turn_latency_seconds", labels: { outcome: fact.turn }, value: fact.seconds });
        } else this.metric({ name: "voice_time_to_first_seconds", labels: { kind: fact.first }, value: fact.seconds });
      },
      failed: (reason) => {
        this.send(
          errorEvent({
            type: "server_error",
            code: reason,
            message: "The connection to the voice model was lost and could not be restored.",
          }),
        );
        for (const socket of this.ctx.getWebSockets()) socket.close(1011, reason);
        this.ctx.waitUntil(this.end(reason));
      },
    };
    this.relay = new Relay(io, state.session, {
      instructions: VOICE_INSTRUCTIONS(config.RAG_MEDICAL_DISCLAIMER),
      reconnectAfterMs: upstream.refreshSeconds * 1000,
    });
    await this.relay.start();
  }

  private upstreamMode(): UpstreamSettings | undefined {
    return this.upstream === undefined ? upstreamSettings(requireConfig(this.env)) : (this.upstream ?? undefined);
  }

  /** A new session with the user's voice preferences: voice, speed, and VAD sensitivity as the threshold. */
  private async preferredSession(userId: string): Promise<Session> {
    const config = requireConfig(this.env);
    const created = newSession(config.VOICE_REALTIME_MODEL, config.VOICE_MAX_SESSION_SECONDS);
    // Local mode has no speech synthesis: it says so by answering in text from the start.
    const session: Session = this.upstreamMode() ? created : { ...created, output_modalities: ["text"] };
    const preferences = await loadPreferences(createDb(config), userId);
    const detection = session.audio.input.turn_detection;
    return {
      ...session,
      audio: {
        input: {
          ...session.audio.input,
          turn_detection: detection && { ...detection, threshold: 1 - preferences.vadSensitivity },
        },
        output: { ...session.audio.output, voice: preferences.voice, speed: preferences.speed },
      },
    };
  }

  private missingItem(itemId: string, eventId: string | undefined) {
    return errorEvent({
      code: "item_not_found",
      message: `No item with id ${itemId} in this conversation.`,
      param: "item_id",
      event_id: eventId ?? null,
    });
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

  /** A failure in the log: its code, ids and the error's kind, never what the user said. */
  private logFailure(message: string, code: string, error: unknown, fields: Record<string, unknown>): void {
    log(code === "INTERNAL" ? "error" : "warn", message, {
      code,
      session_id: this.state?.sessionId,
      ...fields,
      // A bug or a failing dependency is logged with its cause (described without the data it carried).
      ...(error !== undefined && (code === "INTERNAL" || code.startsWith("UPSTREAM_"))
        ? { error: describeError(error) }
        : {}),
    });
  }

  /** Metrics go out after the event that caused them, never holding it up. */
  private metric(event: MetricEvent): void {
    this.ctx.waitUntil(recordMetrics(this.env, undefined, event));
  }

  /** Writes the audio received so far to the session row. */
  private async syncAudio(): Promise<void> {
    const state = this.state as State;
    this.audioSyncedAt = Date.now();
    try {
      await setVoiceAudioIn(createDb(requireConfig(this.env)), state.sessionId, Math.round(state.audioMs));
    } catch (error) {
      log("warn", "voice session usage not saved; next sync retries", { error: describeError(error) });
    }
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
    this.running?.abort.abort("client_cancelled");
    await this.syncAudio();
    // What was said lives in the conversation (when there is one), not here: nothing is kept after the end.
    await this.ctx.storage.deleteAll();
    await markVoiceSession(createDb(requireConfig(this.env)), state.sessionId, { status: "ended", reason });
  }

  private send(event: object): void {
    const { type, error } = event as { type?: string; error?: { code?: string } };
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

/** What a client is told: an internal failure says only where to find it in the log (the error event's id). */
const clientMessage = (failure: { code: string; message: string }) =>
  failure.code === "INTERNAL"
    ? "An unexpected error occurred. Quote this error event's event_id when reporting it."
    : failure.message;

/** The text of the last user item: undefined when there is none, null when it is audio without a transcript. */
function lastUserText(items: Item[]): string | null | undefined {
  const last = [...items].reverse().find((i): i is MessageItem => i.type === "message" && i.role === "user");
  if (!last) return undefined;
  const text = last.content
    .map((part) => ("text" in part ? part.text : "transcript" in part ? (part.transcript ?? "") : ""))
    .join(" ")
    .trim();
  return text || null;
}

const lastUserItemId = (items: Item[]) =>
  [...items].reverse().find((i) => i.type === "message" && i.role === "user")?.id;

/** Earlier text turns of the session, for the prompt (the last user item is the question). */
function historyOf(items: Item[]): HistoryTurn[] {
  const messages = items.filter((i): i is MessageItem => i.type === "message");
  return messages.slice(0, -1).flatMap((m) => {
    const content = m.content
      .map((p) => ("text" in p ? p.text : "transcript" in p ? (p.transcript ?? "") : ""))
      .join(" ")
      .trim();
    return content && m.role !== "system" ? [{ role: m.role, content } as HistoryTurn] : [];
  });
}

async function* onlyAnswerEvents(events: AsyncIterable<{ type: string }>): AsyncIterable<AnswerEvent> {
  for await (const event of events) if (event.type !== "user_message") yield event as AnswerEvent;
}
