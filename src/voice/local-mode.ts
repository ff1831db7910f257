import { createDb } from "../db/client.ts";
import { requireConfig } from "../env.ts";
import type { AudioFormat } from "./audio.ts";
import { LocalTurns } from "./local-turns.ts";
import { type ClientEvent, errorEvent, type Item, mergeSession, messageItem, newId, serverEvent } from "./protocol.ts";
import type { SessionIo } from "./session-state.ts";
import { addVoiceUsage } from "./sessions.ts";
import type { AudioInSync } from "./usage-sync.ts";
import { EnergyVad, type VadEvent } from "./vad.ts";

// Less than this is not a turn (OpenAI refuses commits under 100 ms too).
const MIN_COMMIT_MS = 100;

/**
 * Local mode (no OPENAI_API_KEY): the conversation kept here, audio buffered in storage and run through
 * server VAD, text turns answered from the knowledge base. Speech needs a transcription provider, so an
 * audio-only turn ends with a clear error.
 */
export class LocalMode {
  readonly turns: LocalTurns;
  private vad: EnergyVad | undefined;
  private vadOffsetMs = 0;
  private speechItemId: string | undefined;
  private readonly io: SessionIo;
  private readonly audioIn: AudioInSync;

  constructor(io: SessionIo, audioIn: AudioInSync) {
    this.io = io;
    this.audioIn = audioIn;
    this.turns = new LocalTurns(io);
  }

  /** Every client event but input_audio_buffer.append, which the session paces first (see append). */
  async handle(event: Exclude<ClientEvent, { type: "input_audio_buffer.append" }>): Promise<void> {
    const { io } = this;
    const state = io.state();
    switch (event.type) {
      case "session.update":
        state.session = mergeSession(state.session, event.session);
        this.vad = undefined;
        await io.save();
        return io.send(serverEvent("session.updated", { session: state.session }));
      case "input_audio_buffer.commit":
        return this.commit(event.event_id);
      case "input_audio_buffer.clear":
        await this.clearBuffer();
        return io.send(serverEvent("input_audio_buffer.cleared", {}));
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
        if (!item) return io.send(missingItem(event.item_id, event.event_id));
        return io.send(serverEvent("conversation.item.retrieved", { item }));
      }
      case "conversation.item.delete": {
        const before = state.items.length;
        state.items = state.items.filter((i) => i.id !== event.item_id);
        if (state.items.length === before) return io.send(missingItem(event.item_id, event.event_id));
        await io.save();
        return io.send(serverEvent("conversation.item.deleted", { item_id: event.item_id }));
      }
      case "conversation.item.truncate": {
        if (!state.items.some((i) => i.id === event.item_id))
          return io.send(missingItem(event.item_id, event.event_id));
        // Local mode sends no audio, so there is nothing unheard to cut; the acknowledgement keeps clients in step.
        return io.send(
          serverEvent("conversation.item.truncated", {
            item_id: event.item_id,
            content_index: event.content_index,
            audio_end_ms: event.audio_end_ms,
          }),
        );
      }
      case "response.create":
        return this.turns.respond(event.response);
      case "response.cancel":
        return this.turns.cancel(event.event_id);
    }
  }

  /** Buffers admitted audio (up to VOICE_MAX_BUFFER_SECONDS) and runs server VAD over it. */
  async append(bytes: Uint8Array, ms: number, format: AudioFormat, eventId: string | undefined): Promise<void> {
    const { io } = this;
    const state = io.state();
    const config = requireConfig(io.env);
    if (state.audioMs + ms - state.bufferStartMs > config.VOICE_MAX_BUFFER_SECONDS * 1000) {
      return io.send(
        errorEvent({
          code: "input_audio_buffer_full",
          message: `The input buffer holds VOICE_MAX_BUFFER_SECONDS (${config.VOICE_MAX_BUFFER_SECONDS} s): commit or clear it.`,
          event_id: eventId ?? null,
        }),
      );
    }
    await io.ctx.storage.put(`audio:${state.bufferChunks}`, bytes);
    state.bufferChunks++;
    state.audioMs += ms;
    this.audioIn.syncWhenDue(state, (work) => io.ctx.waitUntil(work));
    const detection = state.session.audio.input.turn_detection;
    if (!detection) return io.save();
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
    await io.save();
    for (const vadEvent of events) await this.onVad(vadEvent);
  }

  private async onVad(event: VadEvent): Promise<void> {
    const { io } = this;
    const detection = io.state().session.audio.input.turn_detection;
    if (event.type === "speech_started") {
      this.speechItemId = newId("item");
      io.send(
        serverEvent("input_audio_buffer.speech_started", {
          item_id: this.speechItemId,
          audio_start_ms: Math.round(this.vadOffsetMs + event.audio_start_ms),
        }),
      );
      // Barge-in: the user talks over the answer, so the answer stops.
      if (this.turns.answering && detection?.interrupt_response) {
        this.turns.stop("turn_detected");
        io.metric({ name: "voice_barge_ins_total", labels: {}, value: 1 });
        await addVoiceUsage(createDb(requireConfig(io.env)), io.state().sessionId, { bargeIns: 1 });
      }
      return;
    }
    const itemId = this.speechItemId ?? newId("item");
    io.send(
      serverEvent("input_audio_buffer.speech_stopped", {
        item_id: itemId,
        audio_end_ms: Math.round(this.vadOffsetMs + event.audio_end_ms),
      }),
    );
    await this.commitAudio(itemId);
    if (detection?.create_response) await this.turns.respond(undefined);
  }

  private async commit(eventId: string | undefined): Promise<void> {
    const state = this.io.state();
    if (state.audioMs - state.bufferStartMs < MIN_COMMIT_MS) {
      return this.io.send(
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
    const state = this.io.state();
    const previous = state.items.at(-1)?.id ?? null;
    this.io.send(serverEvent("input_audio_buffer.committed", { item_id: itemId, previous_item_id: previous }));
    await this.audioIn.sync(state);
    await this.clearBuffer();
    this.speechItemId = undefined;
    await this.addItem({ ...messageItem("user", [{ type: "input_audio" }]), id: itemId } as Item);
  }

  private async clearBuffer(): Promise<void> {
    const state = this.io.state();
    const keys = Array.from({ length: state.bufferChunks }, (_, i) => `audio:${i}`);
    for (let i = 0; i < keys.length; i += 128) await this.io.ctx.storage.delete(keys.slice(i, i + 128));
    state.bufferChunks = 0;
    state.bufferStartMs = state.audioMs;
    await this.io.save();
  }

  private async addItem(item: Item): Promise<void> {
    const state = this.io.state();
    const previous = state.items.at(-1)?.id ?? null;
    state.items.push(item);
    await this.io.save();
    this.io.send(serverEvent("conversation.item.added", { previous_item_id: previous, item }));
    this.io.send(serverEvent("conversation.item.done", { previous_item_id: previous, item }));
  }
}

const missingItem = (itemId: string, eventId: string | undefined) =>
  errorEvent({
    code: "item_not_found",
    message: `No item with id ${itemId} in this conversation.`,
    param: "item_id",
    event_id: eventId ?? null,
  });
