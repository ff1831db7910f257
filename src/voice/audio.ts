// Audio payloads of the realtime voice protocol (OpenAI Realtime GA shapes): formats, base64 transport,
// ITU-T G.711 μ-law / A-law decoding and durations. Pure, and allocation-conscious: these run for every
// `input_audio_buffer.append` a Durable Object relays (typically one per 20 ms), so decoding takes an
// optional output buffer and nothing here allocates beyond its result.

/** GA session formats: `session.audio.input.format` / `session.audio.output.format`. */
export type AudioFormat =
  | { readonly type: "audio/pcm"; readonly rate: 24000 }
  | { readonly type: "audio/pcmu" }
  | { readonly type: "audio/pcma" };

/**
 * Largest audio payload one append event may carry, as a duration: 2 s. OpenAI accepts up to 15 MiB per
 * append; a relay that parses, analyses and forwards every event inside a Durable Object wants each event
 * small. Clients stream 20-100 ms chunks; 2 s still admits a client that buffers (e.g. on a bad network) while
 * bounding one event to 96,000 bytes of pcm16 (128,000 base64 characters) or 16,000 bytes of G.711.
 */
export const MAX_APPEND_MS = 2000;

type AudioErrorCode = "invalid_base64" | "empty_audio" | "invalid_audio_length" | "audio_too_large";

/**
 * A client error about audio, shaped for the realtime `error` event:
 * `{type:"error", error:{type:"invalid_request_error", code, message, param}}`.
 */
export class AudioError extends Error {
  readonly code: AudioErrorCode;
  /** The offending field, e.g. "audio". */
  readonly param: string;

  constructor(code: AudioErrorCode, param: string, message: string) {
    super(message);
    this.name = "AudioError";
    this.code = code;
    this.param = param;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Formats

export const sampleRate = (format: AudioFormat): number => (format.type === "audio/pcm" ? format.rate : 8000);
const bytesPerSample = (format: AudioFormat): number => (format.type === "audio/pcm" ? 2 : 1);

/** Duration of `byteLength` bytes of audio in `format`, in milliseconds (fractional). */
export const durationMs = (byteLength: number, format: AudioFormat): number =>
  (Math.floor(byteLength / bytesPerSample(format)) * 1000) / sampleRate(format);

/** Samples in `ms` milliseconds at the format's rate (rounded down). */
const samplesForMs = (ms: number, format: AudioFormat): number => Math.floor((ms * sampleRate(format)) / 1000);

/** Bytes for `ms` milliseconds of audio in `format` (whole samples, rounded down). */
const bytesForMs = (ms: number, format: AudioFormat): number => samplesForMs(ms, format) * bytesPerSample(format);

// ---------------------------------------------------------------------------------------------------------
// Base64 (RFC 4648 standard alphabet; padding optional, no whitespace, no URL-safe alphabet)

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_DECODE = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64_DECODE[B64_ALPHABET.charCodeAt(i)] = i;
}

/** Bytes a base64 text decodes to, without decoding it; -1 when its length cannot be base64. */
export function base64DecodedLength(text: string): number {
  let length = text.length;
  if (length > 0 && text.charCodeAt(length - 1) === 61) length--;
  if (length > 0 && text.charCodeAt(length - 1) === 61) length--;
  if (length % 4 === 1) return -1;
  return Math.floor((length * 3) / 4);
}

function invalidBase64(param: string, detail: string): AudioError {
  return new AudioError("invalid_base64", param, `${param} is not valid base64: ${detail}`);
}

/**
 * Decodes standard base64 into `out` (or a new array). Throws AudioError("invalid_base64") on a character
 * outside the alphabet, misplaced padding or an impossible length.
 */
function decodeBase64(text: string, out?: Uint8Array, param = "audio"): Uint8Array {
  const size = base64DecodedLength(text);
  if (size < 0) throw invalidBase64(param, `a length of ${text.length} characters is impossible`);
  const target = out ? out.subarray(0, size) : new Uint8Array(size);
  if (target.length < size) throw new RangeError(`output buffer holds ${out?.length} bytes, ${size} needed`);
  const n = text.length;
  let o = 0;
  let acc = 0;
  let bits = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 61) break; // "=": padding, checked below
    const v = c < 256 ? B64_DECODE[c]! : -1;
    if (v < 0) {
      const shown = c < 32 || c > 126 ? `\\u${c.toString(16).padStart(4, "0")}` : text[i];
      throw invalidBase64(param, `unexpected character '${shown}' at offset ${i}`);
    }
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      target[o++] = (acc >> bits) & 0xff;
    }
  }
  for (let j = i; j < n; j++) {
    if (text.charCodeAt(j) !== 61) throw invalidBase64(param, `data after '=' padding (offset ${j})`);
  }
  if (i % 4 === 1) throw invalidBase64(param, `${i} data characters cannot end a quantum`);
  if (i < n && n - i !== (4 - (i % 4)) % 4) throw invalidBase64(param, "wrong amount of '=' padding");
  return target;
}

interface DecodeAudioOptions {
  /** Largest payload accepted, as a duration in ms of the format (default MAX_APPEND_MS). */
  maxMs?: number;
  /** The field named in errors (default "audio", as in `input_audio_buffer.append {audio}`). */
  param?: string;
  /** Decode into this buffer when it is large enough (the result is a view of it). */
  out?: Uint8Array;
}

/**
 * Validates and decodes the base64 `audio` of an append event: not empty, valid base64, whole samples
 * (an even byte count for pcm16) and at most `maxMs` of audio. The size check runs before decoding, so an
 * oversized event costs nothing but its length.
 */
export function decodeAudioPayload(text: unknown, format: AudioFormat, options: DecodeAudioOptions = {}): Uint8Array {
  const param = options.param ?? "audio";
  if (typeof text !== "string") {
    throw new AudioError("invalid_base64", param, `${param} must be a base64 string`);
  }
  if (text.length === 0) throw new AudioError("empty_audio", param, `${param} is empty`);
  const size = base64DecodedLength(text);
  if (size < 0) throw invalidBase64(param, `a length of ${text.length} characters is impossible`);
  const maxMs = options.maxMs ?? MAX_APPEND_MS;
  const maxBytes = bytesForMs(maxMs, format);
  if (size > maxBytes) {
    throw new AudioError(
      "audio_too_large",
      param,
      `${param} carries ${size} bytes (${Math.round(durationMs(size, format))} ms of ${format.type}); ` +
        `one event takes at most ${maxBytes} bytes (${maxMs} ms): send smaller chunks`,
    );
  }
  const bytes = decodeBase64(text, options.out && options.out.length >= size ? options.out : undefined, param);
  if (bytes.length === 0) throw new AudioError("empty_audio", param, `${param} decodes to no audio`);
  const width = bytesPerSample(format);
  if (bytes.length % width !== 0) {
    throw new AudioError(
      "invalid_audio_length",
      param,
      `${param} decodes to ${bytes.length} bytes: ${format.type} needs whole ${width}-byte samples (an even count)`,
    );
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------
// ITU-T G.711 decoding (16-bit linear scale, as in the reference g711.c: μ-law bias 0x84, A-law on 13 bits)

const ULAW_BIAS = 0x84;

/** μ-law code → linear sample. 0xFF and 0x7F are G.711's +0 and −0 (both 0). */
const MULAW_TO_PCM16 = new Int16Array(256);
/** A-law code → linear sample (the even-bit inversion 0x55 included). */
const ALAW_TO_PCM16 = new Int16Array(256);
for (let code = 0; code < 256; code++) {
  const u = ~code & 0xff;
  const exponent = (u >> 4) & 7;
  const magnitude = ((((u & 0x0f) << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
  MULAW_TO_PCM16[code] = u & 0x80 ? -magnitude : magnitude;

  const a = code ^ 0x55;
  const segment = (a & 0x70) >> 4;
  let t = (a & 0x0f) << 4;
  if (segment === 0) t += 8;
  else t = (t + 0x108) << (segment - 1);
  ALAW_TO_PCM16[code] = a & 0x80 ? t : -t;
}

// ---------------------------------------------------------------------------------------------------------
// Conversion to the analysis form: Int16 samples at the format's own rate

function outputOf(out: Int16Array | undefined, length: number): Int16Array {
  if (!out) return new Int16Array(length);
  if (out.length < length) throw new RangeError(`output buffer holds ${out.length} samples, ${length} needed`);
  return out.subarray(0, length);
}

/** Samples in `byteLength` bytes of the format. */
const sampleCount = (byteLength: number, format: AudioFormat): number =>
  Math.floor(byteLength / bytesPerSample(format));

/** Decodes wire bytes of `format` into Int16 samples at the format's rate (into `out` when given). */
export function toInt16(bytes: Uint8Array, format: AudioFormat, out?: Int16Array): Int16Array {
  const n = sampleCount(bytes.length, format);
  const samples = outputOf(out, n);
  if (format.type === "audio/pcm") {
    for (let i = 0, b = 0; i < n; i++, b += 2) samples[i] = bytes[b]! | (bytes[b + 1]! << 8); // wraps to int16
  } else {
    const table = format.type === "audio/pcmu" ? MULAW_TO_PCM16 : ALAW_TO_PCM16;
    for (let i = 0; i < n; i++) samples[i] = table[bytes[i]!]!;
  }
  return samples;
}
