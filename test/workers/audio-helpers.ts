// Test-side audio: the formats as constants, sizes, base64 encoding and the G.711 / pcm16 encoders that
// build client payloads. Production only ever decodes (src/voice/audio.ts); these make the input it decodes,
// and voice-audio.test.ts checks them against the production decoder and against sox.
import type { AudioFormat } from "../../src/voice/audio.ts";

/** 16-bit signed little-endian mono PCM at 24 kHz. */
export const PCM24K: AudioFormat = Object.freeze({ type: "audio/pcm", rate: 24000 });
/** G.711 μ-law, 8 kHz mono, one byte per sample. */
export const PCMU: AudioFormat = Object.freeze({ type: "audio/pcmu" });
/** G.711 A-law, 8 kHz mono, one byte per sample. */
export const PCMA: AudioFormat = Object.freeze({ type: "audio/pcma" });

const sampleRate = (format: AudioFormat): number => (format.type === "audio/pcm" ? format.rate : 8000);
const bytesPerSample = (format: AudioFormat): number => (format.type === "audio/pcm" ? 2 : 1);

/** Bytes for `ms` milliseconds of audio in `format` (whole samples, rounded down). */
export const bytesForMs = (ms: number, format: AudioFormat): number =>
  Math.floor((ms * sampleRate(format)) / 1000) * bytesPerSample(format);

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_ENCODE = Uint8Array.from(B64_ALPHABET, (c) => c.charCodeAt(0));
const ASCII = new TextDecoder();

/** Standard base64 with padding (for any length: btoa over a spread string fails on large payloads). */
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

/** Base64 of any length (fixtures run past one append event's cap, so not through decodeAudioPayload). */
export const decodeBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// ITU-T G.711 encoders (16-bit linear scale, as in the reference g711.c: μ-law bias 0x84, A-law on 13 bits)

const ULAW_BIAS = 0x84;
const ULAW_CLIP = 32635;
/** Exponent (segment) of a biased magnitude >> 7: position of its highest set bit. */
const SEGMENT = new Uint8Array(256);
for (let i = 1; i < 256; i++) SEGMENT[i] = 31 - Math.clz32(i);

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

/** Encodes Int16 samples (at the format's rate) into wire bytes of `format`. */
export function fromInt16(samples: Int16Array, format: AudioFormat): Uint8Array {
  const n = samples.length;
  const bytes = new Uint8Array(n * bytesPerSample(format));
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
