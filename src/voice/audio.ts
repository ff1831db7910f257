// Over 400 lines on purpose: the G.711 tables, codecs and the conversions that use them are one concern.
// Audio payloads of the realtime voice protocol (OpenAI Realtime GA shapes): formats, base64 transport,
// ITU-T G.711 μ-law / A-law, conversions and durations. Pure, and allocation-conscious: these run for every
// `input_audio_buffer.append` a Durable Object relays (typically one per 20 ms), so every conversion takes an
// optional output buffer and nothing here allocates beyond its result.

/** GA session formats: `session.audio.input.format` / `session.audio.output.format`. */
export type AudioFormat =
  | { readonly type: "audio/pcm"; readonly rate: 24000 }
  | { readonly type: "audio/pcmu" }
  | { readonly type: "audio/pcma" };

export type AudioFormatType = AudioFormat["type"];

/** 16-bit signed little-endian mono PCM at 24 kHz. */
export const PCM24K: AudioFormat = Object.freeze({ type: "audio/pcm", rate: 24000 });
/** G.711 μ-law, 8 kHz mono, one byte per sample. */
export const PCMU: AudioFormat = Object.freeze({ type: "audio/pcmu" });
/** G.711 A-law, 8 kHz mono, one byte per sample. */
export const PCMA: AudioFormat = Object.freeze({ type: "audio/pcma" });

/**
 * Largest audio payload one append event may carry, as a duration: 2 s. OpenAI accepts up to 15 MiB per
 * append; a relay that parses, analyses and forwards every event inside a Durable Object wants each event
 * small. Clients stream 20-100 ms chunks; 2 s still admits a client that buffers (e.g. on a bad network) while
 * bounding one event to 96,000 bytes of pcm16 (128,000 base64 characters) or 16,000 bytes of G.711.
 */
export const MAX_APPEND_MS = 2000;

export type AudioErrorCode =
  | "invalid_audio_format"
  | "invalid_base64"
  | "empty_audio"
  | "invalid_audio_length"
  | "audio_too_large";

/**
 * A client error about audio, shaped for the realtime `error` event:
 * `{type:"error", error:{type:"invalid_request_error", code, message, param}}`.
 */
export class AudioError extends Error {
  readonly code: AudioErrorCode;
  /** The offending field, e.g. "audio" or "session.audio.input.format.type". */
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
export const bytesPerSample = (format: AudioFormat): number => (format.type === "audio/pcm" ? 2 : 1);

/** Duration of `byteLength` bytes of audio in `format`, in milliseconds (fractional). */
export const durationMs = (byteLength: number, format: AudioFormat): number =>
  (Math.floor(byteLength / bytesPerSample(format)) * 1000) / sampleRate(format);

/** Samples in `ms` milliseconds at the format's rate (rounded down). */
export const samplesForMs = (ms: number, format: AudioFormat): number => Math.floor((ms * sampleRate(format)) / 1000);

/** Bytes for `ms` milliseconds of audio in `format` (whole samples, rounded down). */
export const bytesForMs = (ms: number, format: AudioFormat): number =>
  samplesForMs(ms, format) * bytesPerSample(format);

const BETA_NAMES: Record<string, string> = {
  pcm16: '{"type":"audio/pcm","rate":24000}',
  g711_ulaw: '{"type":"audio/pcmu"}',
  g711_alaw: '{"type":"audio/pcma"}',
};

/**
 * Parses a GA format object from a session.update (`field` names it in errors, e.g.
 * "session.audio.input.format"). `audio/pcm` needs rate 24000 (its default when omitted); the G.711 types
 * take no rate, or 8000. Throws AudioError("invalid_audio_format") naming the offending field.
 */
export function parseAudioFormat(value: unknown, field = "session.audio.input.format"): AudioFormat {
  if (typeof value === "string") {
    const ga = BETA_NAMES[value];
    throw new AudioError(
      "invalid_audio_format",
      field,
      ga
        ? `${field}: "${value}" is the beta protocol's name; the GA protocol takes ${ga}`
        : `${field} must be an object such as {"type":"audio/pcm","rate":24000}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AudioError(
      "invalid_audio_format",
      field,
      `${field} must be an object such as {"type":"audio/pcm","rate":24000}`,
    );
  }
  const { type, rate } = value as { type?: unknown; rate?: unknown };
  const rateField = `${field}.rate`;
  switch (type) {
    case "audio/pcm":
      if (rate !== undefined && rate !== 24000) {
        throw new AudioError(
          "invalid_audio_format",
          rateField,
          `${rateField} must be 24000 for audio/pcm (got ${JSON.stringify(rate)})`,
        );
      }
      return PCM24K;
    case "audio/pcmu":
    case "audio/pcma":
      if (rate !== undefined && rate !== 8000) {
        throw new AudioError(
          "invalid_audio_format",
          rateField,
          `${rateField} must be 8000 (or absent) for ${type} (got ${JSON.stringify(rate)})`,
        );
      }
      return type === "audio/pcmu" ? PCMU : PCMA;
    default:
      throw new AudioError(
        "invalid_audio_format",
        `${field}.type`,
        `${field}.type must be one of "audio/pcm", "audio/pcmu", "audio/pcma" (got ${JSON.stringify(type)})`,
      );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Base64 (RFC 4648 standard alphabet; padding optional, no whitespace, no URL-safe alphabet)

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_ENCODE = new Uint8Array(64);
const B64_DECODE = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) {
  B64_ENCODE[i] = B64_ALPHABET.charCodeAt(i);
  B64_DECODE[B64_ALPHABET.charCodeAt(i)] = i;
}
const ASCII = new TextDecoder();

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
export function decodeBase64(text: string, out?: Uint8Array, param = "audio"): Uint8Array {
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

/** Standard base64 with padding. */
export function encodeBase64(bytes: Uint8Array): string {
  const n = bytes.length;
  const out = new Uint8Array(Math.ceil(n / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = B64_ENCODE[v >> 18]!;
    out[o++] = B64_ENCODE[(v >> 12) & 63]!;
    out[o++] = B64_ENCODE[(v >> 6) & 63]!;
    out[o++] = B64_ENCODE[v & 63]!;
  }
  if (i < n) {
    const two = i + 1 < n;
    const v = (bytes[i]! << 16) | (two ? bytes[i + 1]! << 8 : 0);
    out[o++] = B64_ENCODE[v >> 18]!;
    out[o++] = B64_ENCODE[(v >> 12) & 63]!;
    out[o++] = two ? B64_ENCODE[(v >> 6) & 63]! : 61;
    out[o++] = 61;
  }
  return ASCII.decode(out);
}

export interface DecodeAudioOptions {
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
// ITU-T G.711 (16-bit linear scale, as in the reference g711.c: μ-law bias 0x84, A-law on 13 bits)

const ULAW_BIAS = 0x84;
const ULAW_CLIP = 32635;

/** μ-law code → linear sample. 0xFF and 0x7F are G.711's +0 and −0 (both 0). */
export const MULAW_TO_PCM16 = new Int16Array(256);
/** A-law code → linear sample (the even-bit inversion 0x55 included). */
export const ALAW_TO_PCM16 = new Int16Array(256);
/** Exponent (segment) of a biased magnitude >> 7: position of its highest set bit. */
const SEGMENT = new Uint8Array(256);
for (let i = 1; i < 256; i++) SEGMENT[i] = 31 - Math.clz32(i);

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

/** Linear 16-bit sample → μ-law code (0 → 0xFF). */
export function muLawEncode(sample: number): number {
  let s = sample | 0;
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  if (s > ULAW_CLIP) s = ULAW_CLIP;
  s += ULAW_BIAS;
  const exponent = SEGMENT[s >> 7]!;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** Linear 16-bit sample → A-law code (0 → 0xD5). */
export function aLawEncode(sample: number): number {
  let s = (sample | 0) >> 3; // 13-bit
  let mask: number;
  if (s >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    s = -s - 1;
  }
  if (s > 0xfff) return 0x7f ^ mask;
  const segment = s < 0x20 ? 0 : SEGMENT[s >> 4]!; // s < 2^12: segment 1..7 for 0x20..0xFFF
  const mantissa = segment < 2 ? (s >> 1) & 0x0f : (s >> segment) & 0x0f;
  return ((segment << 4) | mantissa) ^ mask;
}

export const muLawDecode = (code: number): number => MULAW_TO_PCM16[code & 0xff]!;
export const aLawDecode = (code: number): number => ALAW_TO_PCM16[code & 0xff]!;

// ---------------------------------------------------------------------------------------------------------
// Conversions to and from the analysis form: Int16 samples at the format's own rate

function outputOf<T extends Int16Array | Uint8Array | Float32Array>(
  out: T | undefined,
  length: number,
  make: (n: number) => T,
): T {
  if (!out) return make(length);
  if (out.length < length) throw new RangeError(`output buffer holds ${out.length} samples, ${length} needed`);
  return out.subarray(0, length) as T;
}

/** Samples in `byteLength` bytes of the format. */
export const sampleCount = (byteLength: number, format: AudioFormat): number =>
  Math.floor(byteLength / bytesPerSample(format));

/** Decodes wire bytes of `format` into Int16 samples at the format's rate (into `out` when given). */
export function toInt16(bytes: Uint8Array, format: AudioFormat, out?: Int16Array): Int16Array {
  const n = sampleCount(bytes.length, format);
  const samples = outputOf(out, n, (k) => new Int16Array(k));
  if (format.type === "audio/pcm") {
    for (let i = 0, b = 0; i < n; i++, b += 2) samples[i] = bytes[b]! | (bytes[b + 1]! << 8); // wraps to int16
  } else {
    const table = format.type === "audio/pcmu" ? MULAW_TO_PCM16 : ALAW_TO_PCM16;
    for (let i = 0; i < n; i++) samples[i] = table[bytes[i]!]!;
  }
  return samples;
}

/** Encodes Int16 samples (at the format's rate) into wire bytes of `format` (into `out` when given). */
export function fromInt16(samples: Int16Array, format: AudioFormat, out?: Uint8Array): Uint8Array {
  const n = samples.length;
  const bytes = outputOf(out, n * bytesPerSample(format), (k) => new Uint8Array(k));
  if (format.type === "audio/pcm") {
    for (let i = 0, b = 0; i < n; i++, b += 2) {
      const s = samples[i]!;
      bytes[b] = s & 0xff;
      bytes[b + 1] = (s >> 8) & 0xff;
    }
  } else if (format.type === "audio/pcmu") {
    for (let i = 0; i < n; i++) bytes[i] = muLawEncode(samples[i]!);
  } else {
    for (let i = 0; i < n; i++) bytes[i] = aLawEncode(samples[i]!);
  }
  return bytes;
}

/** Int16 → Float32 in [-1, 1). */
export function int16ToFloat32(samples: Int16Array, out?: Float32Array): Float32Array {
  const result = outputOf(out, samples.length, (k) => new Float32Array(k));
  for (let i = 0; i < samples.length; i++) result[i] = samples[i]! / 32768;
  return result;
}

/** Float32 in [-1, 1] → Int16, clipped and rounded. */
export function float32ToInt16(samples: Float32Array, out?: Int16Array): Int16Array {
  const result = outputOf(out, samples.length, (k) => new Int16Array(k));
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round(samples[i]! * 32768);
    result[i] = Math.min(32767, Math.max(-32768, v));
  }
  return result;
}

/** Output length of resampleLinear for `inputLength` samples. */
export const resampledLength = (inputLength: number, fromRate: number, toRate: number): number =>
  Math.floor((inputLength * toRate) / fromRate);

/**
 * Linear-interpolation resampler for one chunk (e.g. 8 kHz ↔ 24 kHz between G.711 and pcm16). Stateless:
 * the last input sample is held at the chunk's end, so feed whole utterances or accept a tiny seam per chunk.
 * Downsampling does not low-pass first (fine for speech at 24 → 8 kHz ahead of a telephone codec; not hi-fi).
 */
export function resampleLinear(input: Int16Array, fromRate: number, toRate: number, out?: Int16Array): Int16Array {
  const n = resampledLength(input.length, fromRate, toRate);
  const result = outputOf(out, n, (k) => new Int16Array(k));
  const last = input.length - 1;
  for (let i = 0; i < n; i++) {
    const position = (i * fromRate) / toRate;
    const j = Math.floor(position);
    const frac = position - j;
    const a = input[j]!;
    const b = j < last ? input[j + 1]! : a;
    result[i] = Math.round(a + (b - a) * frac);
  }
  return result;
}
