import { sendMessage } from "../conversations/turns.ts";
import { createDb } from "../db/client.ts";
import { apiErrorOf } from "../db/unavailable.ts";
import { requireConfig } from "../env.ts";
import { estimateTokens } from "../kb/chunk.ts";
import { type AnswerEvent, answerQuestion } from "../rag/answer.ts";
import type { Citation } from "../rag/citations.ts";
import type { HistoryTurn } from "../rag/prompt.ts";
import {
  errorEvent,
  type Item,
  type MessageItem,
  messageItem,
  newId,
  newResponse,
  type RealtimeResponse,
  responseUsage,
  serverEvent,
} from "./protocol.ts";
import { citationMetadata } from "./relay.ts";
import { clientMessage, type SessionIo, type State } from "./session-state.ts";
import { recordLocalTurn } from "./usage-sync.ts";

type Position = { response_id: string; item_id: string; output_index: number; content_index: number };

/** Why a local answer stops early: the client cancelled, or the user started talking over it. */
type StopReason = "client_cancelled" | "turn_detected";

/**
 * Local mode's responses: the last user message answered from the knowledge base, streamed as text, with
 * citations in the response metadata. One response at a time.
 */
export class LocalTurns {
  private running: { response: RealtimeResponse; abort: AbortController } | undefined;
  private readonly io: SessionIo;

  constructor(io: SessionIo) {
    this.io = io;
  }

  get answering(): boolean {
    return this.running !== undefined;
  }

  /** Stops the answer in progress, if any; it still ends with response.done. */
  stop(reason: StopReason): void {
    this.running?.abort.abort(reason);
  }

  cancel(eventId: string | undefined): void {
    if (this.running) {
      this.running.abort.abort("client_cancelled");
      return;
    }
    this.io.send(
      errorEvent({
        code: "response_cancel_not_active",
        message: "There is no response in progress to cancel.",
        event_id: eventId ?? null,
      }),
    );
  }

  /** Answers the last user item from the knowledge base, streaming text; citations go in the response metadata. */
  async respond(params: Parameters<typeof newResponse>[1]): Promise<void> {
    const { io } = this;
    const state = io.state();
    if (this.running) {
      return io.send(
        errorEvent({
          code: "conversation_already_has_active_response",
          message: "A response is in progress: wait for response.done or send response.cancel.",
        }),
      );
    }
    const question = lastUserText(state.items);
    if (question === undefined) {
      return io.send(
        errorEvent({
          code: "no_user_input",
          message: "There is no user message to answer: send conversation.item.create with input_text first.",
        }),
      );
    }
    if (question === null) {
      return io.send(
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
    io.send(serverEvent("response.created", { response }));
    const item = { ...messageItem("assistant", [{ type: "output_text", text: "" }], "in_progress") } as MessageItem;
    const at = { response_id: response.id, item_id: item.id, output_index: 0, content_index: 0 };
    io.send(serverEvent("response.output_item.added", { response_id: response.id, output_index: 0, item }));
    // The item joins the conversation as it starts (in progress), and is done when the answer is.
    const previous = state.items.at(-1)?.id ?? null;
    io.send(serverEvent("conversation.item.added", { previous_item_id: previous, item }));
    io.send(serverEvent("response.content_part.added", { ...at, part: { type: "text", text: "" } }));
    // The answer streams in the background, so the events after it (cancel, barge-in audio) are heard.
    io.ctx.waitUntil(this.stream(question, response, abort, item, at, previous, seconds));
  }

  private async stream(
    question: string,
    response: RealtimeResponse,
    abort: AbortController,
    item: MessageItem,
    at: Position,
    previous: string | null,
    seconds: () => number,
  ): Promise<void> {
    const { io } = this;
    const state = io.state();
    let text = "";
    let citations: Citation[] = [];
    let failure: { code: string; message: string } | undefined;
    let thrown: unknown;
    let usage = { prompt: estimateTokens(question), completion: 0 };
    try {
      for await (const event of answer(io, state, question, abort.signal)) {
        if (event.type === "delta") {
          if (!text) io.metric({ name: "voice_time_to_first_seconds", labels: { kind: "text" }, value: seconds() });
          text += event.text;
          io.send(serverEvent("response.output_text.delta", { ...at, delta: event.text }));
        } else if (event.type === "citations") citations = event.citations;
        else if (event.type === "error") failure = event;
        else usage = { prompt: event.answer.usage.promptTokens, completion: event.answer.usage.completionTokens };
      }
    } catch (error) {
      // Whatever throws, a started response still ends: as failed, unless the client stopped it.
      if (!abort.signal.aborted) {
        failure = apiErrorOf(error);
        thrown = error;
      }
    } finally {
      this.running = undefined;
    }
    const refusal =
      failure &&
      errorEvent({ type: "server_error", code: failure.code.toLowerCase(), message: clientMessage(failure) });
    if (failure && refusal) {
      io.logFailure("voice response failed", failure.code, thrown, {
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
    io.send(serverEvent("response.output_text.done", { ...at, text }));
    io.send(serverEvent("response.content_part.done", { ...at, part: { type: "text", text } }));
    io.send(serverEvent("response.output_item.done", { response_id: response.id, output_index: 0, item: done }));
    if (!failure) {
      state.items.push(done);
      io.send(serverEvent("conversation.item.done", { previous_item_id: previous, item: done }));
    }
    if (refusal) io.send(refusal);
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
    io.send(serverEvent("response.done", { response: finished }));
    io.metric({ name: "voice_turn_latency_seconds", labels: { outcome: status }, value: seconds() });
    // Bookkeeping after the client has its answer: a failure here is logged, never a hanging response.
    try {
      await io.save();
      await recordLocalTurn(createDb(requireConfig(io.env)), state.sessionId, usage);
    } catch (error) {
      io.logFailure("voice turn not recorded", apiErrorOf(error).code, error, { response_id: response.id });
    }
  }
}

/** A grounded answer: stored in the session's conversation when it has one, else from the session's own turns. */
function answer(io: SessionIo, state: State, question: string, signal: AbortSignal): AsyncIterable<AnswerEvent> {
  const config = requireConfig(io.env);
  const turn = { userId: state.userId, channel: "voice" as const, signal };
  if (state.conversationId) {
    const events = sendMessage(
      config,
      io.env,
      { ...turn, conversationId: state.conversationId },
      { content: question, clientMessageId: lastUserItemId(state.items) ?? newId("item") },
      { ctx: io.ctx },
    );
    return onlyAnswerEvents(events);
  }
  return answerQuestion(config, io.env, { ...turn, question, history: historyOf(state.items) }, { ctx: io.ctx });
}

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
