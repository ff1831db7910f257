// Over 400 lines by design: one state machine over two event streams (the client's and OpenAI's), whose
// session, items, tool calls, turn timing and reconnects share state; split, that state would cross files.
import type { Citation } from "../rag/citations.ts";
import { base64DecodedLength, durationMs } from "./audio.ts";
import { SEARCH_TOOL, SEARCH_TOOL_NAME } from "./grounding.ts";
import { type ClientEvent, type Item, mergeSession, type Session } from "./protocol.ts";
import type { UpstreamHandlers, UpstreamSocket } from "./upstream.ts";

/** A passage the search tool returned, numbered as the model saw it. */
export type Passage = Citation & { text: string };

/** A finished exchange: what the user said (typed or transcribed) and what the assistant answered. */
export interface Exchange {
  question: string;
  answer: string;
  citations: Citation[];
  inputTokens: number;
  outputTokens: number;
  /** From the end of the user's turn to the end of the answer. */
  latencyMs: number;
}

export interface RelayIo {
  toClient(event: object): void;
  connect(handlers: UpstreamHandlers): Promise<UpstreamSocket>;
  search(query: string, topK: number): Promise<Passage[]>;
  /** A completed answer (after any tool calls): stored and accounted by the session. */
  finished(exchange: Exchange): Promise<void>;
  /** Audio sent to the client, in ms; a barge-in; first transcript of spoken input; first output of a turn. */
  observe(
    fact:
      | { audioOutMs: number }
      | { bargeIn: true }
      | { transcript: true; seconds: number }
      | { first: "text" | "audio"; seconds: number }
      | { turn: string; seconds: number },
  ): void;
  /** The upstream could not be restored: the session ends. */
  failed(reason: string): void;
}

interface RelayOptions {
  instructions: string;
  /** Reconnect upstream after this long, before OpenAI's 60-minute cap. */
  reconnectAfterMs: number;
  maxReconnects?: number;
}

const DEFAULT_TRANSCRIPTION = { model: "gpt-4o-mini-transcribe" };

type UpstreamEvent = { type: string } & Record<string, unknown>;
type AnyItem = Item & { id: string };

/**
 * Relays a client to OpenAI Realtime with the server's grounding: our instructions and the
 * search_knowledge_base tool are injected into the session (the client sees its own settings), the tool
 * runs here against the knowledge base, and the conversation is re-injected into a fresh upstream when
 * the connection drops or nears its hour, so the client sees no break.
 */
export class Relay {
  private upstream: UpstreamSocket | undefined;
  private session: Session;
  private items: AnyItem[] = [];
  private queue: object[] = [];
  private restoring = false;
  private echo = { session: 0, items: new Set<string>() };
  private reconnects = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  // The current turn.
  private question = "";
  private answer = "";
  private passages: Passage[] = [];
  private pendingTools: Promise<void>[] = [];
  private turnStarted: number | undefined;
  private firstSeen = new Set<string>();
  /** When the user's speech ended, by input item, until the first transcript of it goes to the client. */
  private speechEnded = new Map<string, number>();
  private responding = false;
  private readonly io: RelayIo;
  private readonly options: RelayOptions;

  constructor(io: RelayIo, session: Session, options: RelayOptions) {
    this.io = io;
    this.session = session;
    this.options = options;
  }

  async start(): Promise<void> {
    await this.open(false);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.upstream?.close(1000, "client closed");
  }

  /** A client event, already validated; session settings are kept here and grounded on the way up. */
  fromClient(event: ClientEvent): void {
    if (event.type === "session.update") {
      this.session = mergeSession(this.session, event.session);
      this.send({ type: "session.update", session: this.grounded(event.session) });
      return;
    }
    if (event.type === "conversation.item.create") {
      const text = textOf(event.item as Item);
      if (text && (event.item as { role?: string }).role === "user") this.question = text;
    }
    if (event.type === "response.create") this.turnStarted = Date.now();
    this.send(event);
  }

  private send(event: object): void {
    if (!this.upstream || this.restoring) this.queue.push(event);
    else this.upstream.send(event);
  }

  /** The client's settings with ours added: our instructions first, the search tool always present. */
  private grounded(patch: Record<string, unknown>): Record<string, unknown> {
    const clientTools = this.session.tools.filter((t) => t.name !== SEARCH_TOOL_NAME);
    const own = this.session.instructions ? `\n\n${this.session.instructions}` : "";
    // Spoken questions must come back as text, to be searched and stored: transcription is always on.
    const audio = (patch.audio ?? {}) as { input?: Record<string, unknown> };
    const transcription = this.session.audio.input.transcription ?? DEFAULT_TRANSCRIPTION;
    return {
      ...patch,
      type: "realtime",
      instructions: `${this.options.instructions}${own}`,
      tools: [SEARCH_TOOL, ...clientTools],
      audio: { ...audio, input: { ...audio.input, transcription } },
    };
  }

  private async open(restore: boolean): Promise<void> {
    this.restoring = restore;
    const socket = await this.io.connect({ onEvent: (e) => this.onUpstream(e), onDrop: () => this.onDrop() });
    // The client left while this connection was being made: it must not outlive the session.
    if (this.closed) return socket.close(1000, "client closed");
    this.upstream = socket;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), this.options.reconnectAfterMs);
  }

  /** Before the upstream's hour is up, move to a fresh connection between turns. */
  private refresh(): void {
    if (this.closed) return;
    if (this.responding) {
      this.timer = setTimeout(() => this.refresh(), 1_000);
      return;
    }
    const old = this.upstream;
    this.upstream = undefined;
    old?.close(1000, "refreshing before the session cap");
    void this.reconnect();
  }

  private onDrop(): void {
    if (this.closed) return;
    this.upstream = undefined;
    // An answer cut off mid-way is asked for again once the conversation is restored.
    if (this.responding) {
      this.responding = false;
      this.answer = "";
      this.queue.push({ type: "response.create" });
    }
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    const max = this.options.maxReconnects ?? 3;
    while (!this.closed && this.reconnects < max) {
      this.reconnects++;
      try {
        await this.open(true);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 250 * this.reconnects));
      }
    }
    if (!this.closed) this.io.failed("upstream_failed");
  }

  private onUpstream(event: UpstreamEvent): void {
    if (event.type === "session.created") {
      // Ours to answer: the grounded settings, and after a reconnect the conversation and what waited.
      this.upstream?.send({ type: "session.update", session: this.grounded(this.patchOf(this.session)) });
      this.echo.session++;
      if (this.restoring) {
        this.restore();
        return;
      }
    }
    if (this.isEcho(event)) return;
    this.track(event);
    if (event.type === "session.created" || event.type === "session.updated") {
      // The client sees its own instructions and tools, not the server's grounding.
      event.session = {
        ...(event.session as object),
        instructions: this.session.instructions,
        tools: this.session.tools,
      };
    }
    if (event.type === "response.done") return void this.onResponseDone(event);
    this.io.toClient(event);
  }

  private restore(): void {
    for (const item of this.items) {
      this.echo.items.add(item.id);
      this.upstream?.send({ type: "conversation.item.create", item: restorable(item) });
    }
    const waiting = this.queue;
    this.queue = [];
    this.restoring = false;
    this.reconnects = 0;
    // Input the old connection committed gets no transcript from this one.
    this.speechEnded.clear();
    for (const queued of waiting) this.upstream?.send(queued);
  }

  /** Answers to what the relay itself sent (its session.update, restored items): not the client's business. */
  private isEcho(event: UpstreamEvent): boolean {
    if (event.type === "session.updated" && this.echo.session > 0) {
      this.echo.session--;
      return true;
    }
    const id = (event.item as { id?: string } | undefined)?.id;
    if (!id || !this.echo.items.has(id)) return false;
    if (event.type === "conversation.item.done") this.echo.items.delete(id);
    return event.type === "conversation.item.added" || event.type === "conversation.item.done";
  }

  /** Follows the conversation and the turn: items, transcripts, first output, barge-ins, tool calls. */
  private track(event: UpstreamEvent): void {
    switch (event.type) {
      case "conversation.item.done": {
        const item = event.item as AnyItem;
        if (!this.items.some((i) => i.id === item.id)) this.items.push(item);
        return;
      }
      case "conversation.item.deleted":
        this.items = this.items.filter((i) => i.id !== event.item_id);
        return;
      case "input_audio_buffer.speech_stopped":
      case "input_audio_buffer.committed": {
        // Whichever comes first ends the speech: speech_stopped with server VAD, committed for a manual commit.
        const itemId = String(event.item_id);
        if (!this.speechEnded.has(itemId)) this.speechEnded.set(itemId, Date.now());
        return;
      }
      case "conversation.item.input_audio_transcription.delta":
        this.transcribed(String(event.item_id));
        return;
      case "conversation.item.input_audio_transcription.completed":
        this.transcribed(String(event.item_id));
        this.question = String(event.transcript ?? "");
        this.turnStarted = Date.now();
        return;
      case "conversation.item.input_audio_transcription.failed":
        this.speechEnded.delete(String(event.item_id));
        return;
      case "input_audio_buffer.speech_started":
        if (this.responding) {
          this.io.observe({ bargeIn: true });
          // The user talks over the answer: stop it. The client truncates what it did not play.
          this.upstream?.send({ type: "response.cancel" });
        }
        return;
      case "response.created":
        this.responding = true;
        return;
      case "response.output_text.delta":
      case "response.output_audio_transcript.delta":
        this.first("text");
        this.answer += String(event.delta ?? "");
        return;
      case "response.output_audio.delta": {
        this.first("audio");
        const bytes = base64DecodedLength(String(event.delta ?? ""));
        if (bytes > 0) this.io.observe({ audioOutMs: durationMs(bytes, this.session.audio.output.format) });
        return;
      }
      case "response.function_call_arguments.done":
        if (event.name === SEARCH_TOOL_NAME)
          this.pendingTools.push(this.runSearch(String(event.call_id), String(event.arguments)));
        return;
    }
  }

  /** The first transcript (delta or completed) of a spoken input, timed from the end of the speech. */
  private transcribed(itemId: string): void {
    const ended = this.speechEnded.get(itemId);
    if (ended === undefined) return;
    this.speechEnded.delete(itemId);
    this.io.observe({ transcript: true, seconds: (Date.now() - ended) / 1000 });
  }

  private first(kind: "text" | "audio"): void {
    if (this.firstSeen.has(kind) || this.turnStarted === undefined) return;
    this.firstSeen.add(kind);
    this.io.observe({ first: kind, seconds: (Date.now() - this.turnStarted) / 1000 });
  }

  private async runSearch(callId: string, args: string): Promise<void> {
    let output: string;
    try {
      const parsed = JSON.parse(args) as { query?: unknown; top_k?: unknown };
      const query = typeof parsed.query === "string" && parsed.query.trim() ? parsed.query : this.question;
      const topK = typeof parsed.top_k === "number" ? Math.min(10, Math.max(1, Math.round(parsed.top_k))) : 5;
      const found = await this.io.search(query, topK);
      const offset = this.passages.length;
      const numbered = found.map((p, i) => ({ ...p, index: offset + i + 1 }));
      this.passages.push(...numbered);
      output = JSON.stringify({
        passages: numbered.map((p) => ({ n: p.index, title: p.title, page: p.page, text: p.text })),
        ...(numbered.length ? {} : { note: "The knowledge base has nothing on this: say so." }),
      });
    } catch (error) {
      output = JSON.stringify({
        error: `The search failed: ${(error as Error).message}. Say that the knowledge base could not be searched.`,
      });
    }
    this.send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: callId, output } });
  }

  private async onResponseDone(event: UpstreamEvent): Promise<void> {
    const response = event.response as {
      status?: string;
      output?: { type?: string }[];
      usage?: { input_tokens?: number; output_tokens?: number };
      metadata?: Record<string, string> | null;
    };
    this.responding = false;
    const calledTool = response.output?.some((o) => o.type === "function_call") && this.pendingTools.length > 0;
    if (calledTool) {
      this.io.toClient(event);
      await Promise.all(this.pendingTools.splice(0));
      // The tool's answer is in the conversation: now the spoken answer.
      this.send({ type: "response.create" });
      return;
    }
    const citations = this.passages.map(({ text: _text, ...citation }) => citation);
    if (citations.length) response.metadata = { ...response.metadata, ...citationMetadata(citations) };
    this.io.toClient(event);
    if (this.turnStarted !== undefined) {
      this.io.observe({ turn: response.status ?? "completed", seconds: (Date.now() - this.turnStarted) / 1000 });
    }
    if (response.status === "completed" && this.answer.trim()) {
      await this.io.finished({
        question: this.question,
        answer: this.answer.trim(),
        citations,
        inputTokens: response.usage?.input_tokens ?? 0,
        outputTokens: response.usage?.output_tokens ?? 0,
        latencyMs: this.turnStarted === undefined ? 0 : Date.now() - this.turnStarted,
      });
    }
    this.answer = "";
    this.question = "";
    this.passages = [];
    this.firstSeen.delete("text");
    this.firstSeen.delete("audio");
    this.turnStarted = undefined;
  }

  /** The current session as an update (what a fresh upstream must be told). */
  private patchOf(session: Session): Record<string, unknown> {
    const { type: _t, object: _o, id: _i, expires_at: _e, model: _m, ...rest } = session;
    return rest;
  }
}

// Response metadata is string → string, at most 512 characters a value: citations go in compact form.
export function citationMetadata(citations: Citation[]): Record<string, string> {
  if (citations.length === 0) return {};
  const compact = citations.map((c) => ({
    i: c.index,
    d: c.document_id,
    c: c.chunk_id,
    t: c.title.slice(0, 60),
    p: c.page,
  }));
  while (compact.length > 1 && JSON.stringify(compact).length > 512) compact.pop();
  return { citations: JSON.stringify(compact) };
}

/** A stored item as conversation.item.create can send it again (audio as its transcript). */
function restorable(item: AnyItem): Record<string, unknown> {
  if (item.type !== "message") return { ...item, status: undefined, object: undefined };
  const content = item.content.map((part) => {
    const p = part as { type: string; text?: string; transcript?: string };
    const text = p.text ?? p.transcript ?? "";
    return item.role === "assistant" ? { type: "output_text", text } : { type: "input_text", text };
  });
  return { id: item.id, type: "message", role: item.role, content };
}

function textOf(item: Item): string {
  if (item.type !== "message") return "";
  return item.content
    .map((p) => {
      const part = p as { text?: string; transcript?: string };
      return part.text ?? part.transcript ?? "";
    })
    .join(" ")
    .trim();
}
