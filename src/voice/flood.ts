import { errorEvent, type ServerEvent } from "./protocol.ts";

// Flood control: what a client may send, and how fast, before it is throttled or disconnected.

const MAX_FRAME_CHARS = 4 * 1024 * 1024;
// Audio may run ahead of real time by this much (a client catching up after a stall); beyond it, throttled.
const AUDIO_AHEAD_MS = 10_000;
// Past twice that, the client is flooding: disconnected with a reason.
const AUDIO_FLOOD_MS = 2 * AUDIO_AHEAD_MS;

/** A client frame's text, or why it is refused before it is parsed. */
export function readFrame(
  data: string | ArrayBuffer,
): { ok: true; text: string } | { ok: false; error: ServerEvent<"error"> } {
  if (typeof data !== "string") {
    return {
      ok: false,
      error: errorEvent({
        code: "invalid_frame",
        message:
          "Binary frames are not accepted: send JSON text events (audio as base64 in input_audio_buffer.append).",
      }),
    };
  }
  if (data.length > MAX_FRAME_CHARS) {
    return {
      ok: false,
      error: errorEvent({
        code: "frame_too_large",
        message: `Frames are limited to ${MAX_FRAME_CHARS} characters: send audio in smaller chunks.`,
      }),
    };
  }
  return { ok: true, text: data };
}

type AudioPace = { verdict: "admitted" } | { verdict: "throttled"; event: object } | { verdict: "flood" };

/** Holds a client's audio to real time: a little ahead is admitted, more is dropped, far more disconnects. */
export class AudioPacer {
  /** Audio refused for arriving too fast: it still counts towards the flood limit. */
  private droppedMs = 0;

  pace(
    chunkMs: number,
    received: { audioMs: number; startedAt: number },
    eventId: string | undefined,
    now = Date.now(),
  ): AudioPace {
    const ahead = received.audioMs + this.droppedMs + chunkMs - (now - received.startedAt);
    if (ahead > AUDIO_FLOOD_MS) return { verdict: "flood" };
    if (ahead > AUDIO_AHEAD_MS) {
      this.droppedMs += chunkMs;
      return {
        verdict: "throttled",
        event: errorEvent({
          code: "audio_rate_exceeded",
          message: `Audio arrives faster than real time (${Math.round(ahead)} ms ahead): this chunk was dropped; slow down.`,
          event_id: eventId ?? null,
        }),
      };
    }
    return { verdict: "admitted" };
  }
}

export const floodEvent = () =>
  errorEvent({ code: "audio_flood", message: "Audio arrives far faster than real time: disconnected." });
