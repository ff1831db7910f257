// Server VAD for realtime voice sessions (OpenAI Realtime GA `turn_detection: {type:"server_vad"}`): an
// energy-based detector with an adaptive noise floor, run by the session's Durable Object on the input audio
// as it arrives. Pure and deterministic: no timers; time is the count of samples fed, so `audio_start_ms` /
// `audio_end_ms` are milliseconds from the start of the session's input audio whatever the chunking.
//
// Algorithm, per 10 ms frame (240 samples at 24 kHz, 80 at 8 kHz; chunks of any size are re-framed):
//   level   = frame RMS in dBFS (full-scale square wave = 0 dBFS; digital silence = -100).
//   floor   = noise floor: starts at the first frame's level clamped to [-70, -40] dBFS, then follows the
//             quietest recent frames: falls fast (halfway to a quieter frame each frame), rises slowly
//             (at most 2 dB/s), never below -70 dBFS.
//   `threshold` t in [0, 1] (default 0.5) sets two numbers (vadLevels):
//             margin = 5 + 20·t dB above the floor        (t = 0.5: 15 dB)
//             minimum = -65 + 40·t dBFS absolute level     (t = 0.5: -45 dBFS)
//   loud    = level ≥ max(floor + margin, minimum)              — can start speech
//   voiced  = level ≥ max(floor + margin / 2, minimum - 10)     — keeps speech going, marks its onset
//   Higher t → less sensitive (louder speech needed, better in noise), as OpenAI documents for threshold.
//   At 0.5: normal speech (-30…-15 dBFS RMS) and quiet speech (about -40) are detected; steady background
//   noise is absorbed by the floor (white noise at -40 dBFS never starts speech) and sporadic sounds quieter
//   than -45 dBFS never start it. Speech whose loud frames are under ~15 dB above steady noise (quiet speech
//   in a noisy room) is missed or clipped at 0.5: lower the threshold there. Noise that steps up suddenly by
//   more than the margin reads as speech until the floor catches up (2 dB/s).
// States:
//   silent → a run of voiced frames containing MIN_SPEECH_MS of loud frames starts speech: emits
//            speech_started with audio_start_ms = start of the run (the onset; at most MAX_BACKDATE_MS
//            before its first loud frame). A non-voiced frame breaks the run.
//   speech → silence_duration_ms without a voiced frame stops it: emits speech_stopped with audio_end_ms =
//            end of the last voiced frame.
// prefix_padding_ms is NOT folded into audio_start_ms: it says how much audio before the onset the committed
// item carries; `paddedStartMs` gives that start for the session to cut the buffer at.

import { type AudioFormat, sampleRate, toInt16 } from "./audio.ts";

export interface ServerVadConfig {
  /** 0..1, default 0.5: higher needs louder speech. */
  threshold: number;
  /** Audio kept before the speech onset in the committed item (default 300). */
  prefixPaddingMs: number;
  /** Silence that ends speech (default 500, as the API reference; GA examples use 200). */
  silenceDurationMs: number;
}

export type VadEvent =
  | { type: "speech_started"; audio_start_ms: number }
  | { type: "speech_stopped"; audio_end_ms: number };

export const DEFAULT_SERVER_VAD: Readonly<ServerVadConfig> = Object.freeze({
  threshold: 0.5,
  prefixPaddingMs: 300,
  silenceDurationMs: 500,
});

export const FRAME_MS = 10;
/** Loud audio needed before speech starts. */
const MIN_SPEECH_MS = 50;
/** How far audio_start_ms may reach back before the first loud frame. */
const MAX_BACKDATE_MS = 200;
const FLOOR_MIN_DBFS = -70;
const FLOOR_START_MAX_DBFS = -40;
const FLOOR_RISE_DB_PER_S = 2;
const FLOOR_FALL = 0.5;
const SILENCE_DBFS = -100;
/** Time is counted in ticks of 1/48000 s: whole ticks per sample at 8, 16, 24 and 48 kHz. */
const TICKS_PER_SECOND = 48000;
const FRAME_TICKS = (TICKS_PER_SECOND * FRAME_MS) / 1000;
const FULL_SCALE_SQUARED = 32768 * 32768;
const NO_EVENTS: readonly VadEvent[] = Object.freeze([]);

/** The levels `threshold` maps to (see the header). */
export function vadLevels(threshold: number): { marginDb: number; minimumDbfs: number } {
  return { marginDb: 5 + 20 * threshold, minimumDbfs: -65 + 40 * threshold };
}

export class VadConfigError extends Error {
  /** The offending field, e.g. "session.audio.input.turn_detection.threshold". */
  readonly param: string;
  constructor(param: string, message: string) {
    super(message);
    this.name = "VadConfigError";
    this.param = param;
  }
}

function numberField(
  source: Record<string, unknown>,
  key: string,
  field: string,
  fallback: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  const value = source[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new VadConfigError(`${field}.${key}`, `${field}.${key} must be ${integer ? "an integer" : "a number"}`);
  }
  if (value < min || value > max) {
    throw new VadConfigError(`${field}.${key}`, `${field}.${key} must be between ${min} and ${max} (got ${value})`);
  }
  return value;
}

/**
 * Reads `{type:"server_vad", threshold?, prefix_padding_ms?, silence_duration_ms?}` (other keys, such as
 * create_response or interrupt_response, are the session's business and ignored here). Throws
 * VadConfigError naming the field.
 */
export function parseServerVad(value: unknown, field = "session.audio.input.turn_detection"): ServerVadConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new VadConfigError(field, `${field} must be an object such as {"type":"server_vad"}`);
  }
  const source = value as Record<string, unknown>;
  if (source.type !== "server_vad") {
    throw new VadConfigError(
      `${field}.type`,
      `${field}.type must be "server_vad" for the energy VAD (got ${JSON.stringify(source.type)})`,
    );
  }
  const d = DEFAULT_SERVER_VAD;
  return {
    threshold: numberField(source, "threshold", field, d.threshold, 0, 1, false),
    prefixPaddingMs: numberField(source, "prefix_padding_ms", field, d.prefixPaddingMs, 0, 10_000, true),
    silenceDurationMs: numberField(source, "silence_duration_ms", field, d.silenceDurationMs, 0, 10_000, true),
  };
}

function ticksPerSample(format: AudioFormat): number {
  const ticks = TICKS_PER_SECOND / sampleRate(format);
  if (!Number.isInteger(ticks)) throw new RangeError(`unsupported sample rate ${sampleRate(format)}`);
  return ticks;
}

/** Energy VAD state machine; one per session input stream. */
export class EnergyVad {
  readonly threshold: number;
  readonly prefixPaddingMs: number;
  readonly silenceDurationMs: number;
  private readonly marginDb: number;
  private readonly minimumDbfs: number;

  // Framing
  private sumSquares = 0;
  private frameSamples = 0;
  private frameTicks = 0;
  /** Frames completed so far; frame k covers [k·10, (k+1)·10) ms. */
  private frames = 0;

  // Noise floor
  private floor = Number.NaN;

  // State machine
  private inSpeech = false;
  /** Silent state: first frame of the current voiced run (-1: none), its first loud frame, loud frames. */
  private runStart = -1;
  private firstLoud = -1;
  private loudFrames = 0;
  /** Speech state: frame index just after the last voiced frame. */
  private voicedEnd = 0;

  private scratch: Int16Array | undefined;

  constructor(config: Partial<ServerVadConfig> = {}) {
    const merged = { ...DEFAULT_SERVER_VAD, ...config };
    if (!(merged.threshold >= 0 && merged.threshold <= 1)) throw new RangeError("threshold must be within 0..1");
    if (!(merged.silenceDurationMs >= 0)) throw new RangeError("silenceDurationMs must be >= 0");
    this.threshold = merged.threshold;
    this.prefixPaddingMs = merged.prefixPaddingMs;
    this.silenceDurationMs = merged.silenceDurationMs;
    const levels = vadLevels(merged.threshold);
    this.marginDb = levels.marginDb;
    this.minimumDbfs = levels.minimumDbfs;
  }

  /** Milliseconds of audio fed so far (whole frames plus the pending part). */
  get elapsedMs(): number {
    return (this.frames * FRAME_TICKS + this.frameTicks) / (TICKS_PER_SECOND / 1000);
  }

  get speaking(): boolean {
    return this.inSpeech;
  }

  /** The current noise floor in dBFS (NaN before the first frame). */
  get noiseFloorDbfs(): number {
    return this.floor;
  }

  /** Where the committed item should start for speech starting at `audioStartMs`: prefix padding included. */
  paddedStartMs(audioStartMs: number): number {
    return Math.max(0, audioStartMs - this.prefixPaddingMs);
  }

  /**
   * Feeds Int16 samples at `format`'s rate. Returns the events this audio completed, oldest first (a shared
   * empty array when none: do not mutate it).
   */
  feed(samples: Int16Array, format: AudioFormat): readonly VadEvent[] {
    const step = ticksPerSample(format);
    let events = NO_EVENTS as VadEvent[];
    let sum = this.sumSquares;
    let count = this.frameSamples;
    let ticks = this.frameTicks;
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i]!;
      sum += s * s;
      count++;
      ticks += step;
      if (ticks >= FRAME_TICKS) {
        const event = this.endFrame(sum / count);
        if (event) {
          if (events === NO_EVENTS) events = [event];
          else events.push(event);
        }
        sum = 0;
        count = 0;
        ticks = 0;
      }
    }
    this.sumSquares = sum;
    this.frameSamples = count;
    this.frameTicks = ticks;
    return events;
  }

  /** Feeds wire bytes of `format` (decoded through a scratch buffer the detector keeps). */
  feedBytes(bytes: Uint8Array, format: AudioFormat): readonly VadEvent[] {
    const n = format.type === "audio/pcm" ? bytes.length >> 1 : bytes.length;
    if (!this.scratch || this.scratch.length < n) this.scratch = new Int16Array(Math.max(n, 960));
    return this.feed(toInt16(bytes, format, this.scratch), format);
  }

  /**
   * Ends the stream (e.g. the socket closes or the buffer is committed by hand): stops speech in progress at
   * its last voiced frame. The partial frame pending is dropped from analysis.
   */
  finish(): readonly VadEvent[] {
    this.runStart = -1;
    this.loudFrames = 0;
    if (!this.inSpeech) return NO_EVENTS;
    this.inSpeech = false;
    return [{ type: "speech_stopped", audio_end_ms: this.voicedEnd * FRAME_MS }];
  }

  /**
   * Forgets speech in progress without an event (input_audio_buffer.clear). Time keeps running, so later
   * events still count from the start of the session's audio; the noise floor is kept.
   */
  reset(): void {
    this.inSpeech = false;
    this.runStart = -1;
    this.firstLoud = -1;
    this.loudFrames = 0;
  }

  private endFrame(meanSquare: number): VadEvent | undefined {
    const level = meanSquare > 0 ? 10 * Math.log10(meanSquare / FULL_SCALE_SQUARED) : SILENCE_DBFS;
    const frame = this.frames++;

    if (Number.isNaN(this.floor)) {
      this.floor = Math.min(Math.max(level, FLOOR_MIN_DBFS), FLOOR_START_MAX_DBFS);
    }
    const floor = this.floor;
    const loud = level >= Math.max(floor + this.marginDb, this.minimumDbfs);
    const voiced = level >= Math.max(floor + this.marginDb / 2, this.minimumDbfs - 10);

    // The floor follows the quiet frames: fast down, slowly up.
    if (level < floor) this.floor = Math.max(FLOOR_MIN_DBFS, floor + (level - floor) * FLOOR_FALL);
    else this.floor = floor + Math.min(level - floor, (FLOOR_RISE_DB_PER_S * FRAME_MS) / 1000);

    if (this.inSpeech) {
      if (voiced) {
        this.voicedEnd = frame + 1;
        return undefined;
      }
      if ((frame + 1 - this.voicedEnd) * FRAME_MS >= this.silenceDurationMs) {
        this.inSpeech = false;
        this.runStart = -1;
        this.loudFrames = 0;
        return { type: "speech_stopped", audio_end_ms: this.voicedEnd * FRAME_MS };
      }
      return undefined;
    }

    if (!voiced) {
      this.runStart = -1;
      this.loudFrames = 0;
      return undefined;
    }
    if (this.runStart < 0) this.runStart = frame;
    if (!loud) return undefined;
    if (this.loudFrames++ === 0) this.firstLoud = frame;
    if (this.loudFrames * FRAME_MS < MIN_SPEECH_MS) return undefined;

    const onset = Math.max(this.runStart, this.firstLoud - MAX_BACKDATE_MS / FRAME_MS);
    this.inSpeech = true;
    this.voicedEnd = frame + 1;
    this.runStart = -1;
    this.loudFrames = 0;
    return { type: "speech_started", audio_start_ms: onset * FRAME_MS };
  }
}
