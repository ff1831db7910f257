import { describe, expect, inject, it } from "vitest";
import { AudioError, decodeAudioPayload, durationMs, MAX_APPEND_MS, toInt16 } from "../../src/voice/audio.ts";
import { aLawEncode, decodeBase64, encodeBase64, fromInt16, muLawEncode, PCM24K, PCMA, PCMU } from "./audio-helpers.ts";

const { voiceFixtures, voiceFixturesMissing } = inject("stack");

function audioError(fn: () => unknown): AudioError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AudioError);
    return error as AudioError;
  }
  throw new Error("expected an AudioError");
}

/** Base64 decoded as an append event's audio: G.711, so any byte count is whole samples. */
const decodePayload = (text: string, out?: Uint8Array) => decodeAudioPayload(text, PCMU, out ? { out } : {});

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, i) => i);
/** The production decoders' tables, read through toInt16. */
const MULAW_TO_PCM16 = toInt16(ALL_CODES, PCMU);
const ALAW_TO_PCM16 = toInt16(ALL_CODES, PCMA);
const muLawDecode = (code: number): number => MULAW_TO_PCM16[code]!;
const aLawDecode = (code: number): number => ALAW_TO_PCM16[code]!;

/** Largest reconstruction error G.711 allows at magnitude |s| (half a step, plus the clip at full scale). */
const g711Tolerance = (s: number) => 16 + Math.abs(s) / 16;

describe("audio durations", () => {
  it("measures durations from byte counts", () => {
    expect(durationMs(48_000, PCM24K)).toBe(1000);
    expect(durationMs(960, PCM24K)).toBe(20);
    expect(durationMs(160, PCMU)).toBe(20);
    expect(durationMs(8000, PCMA)).toBe(1000);
    expect(durationMs(961, PCM24K)).toBe(20); // whole samples only
  });
});

describe("base64 payloads", () => {
  it("round-trips every length and byte value, matching btoa/atob", () => {
    for (let length = 1; length <= 20; length++) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 97 + length * 31) & 0xff);
      const text = encodeBase64(bytes);
      expect(text).toBe(btoa(String.fromCharCode(...bytes)));
      expect(decodePayload(text)).toEqual(bytes);
    }
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(decodePayload(encodeBase64(all))).toEqual(all);
  });

  it("accepts unpadded input and decodes into a caller's buffer", () => {
    expect(decodePayload("AQI")).toEqual(new Uint8Array([1, 2]));
    const out = new Uint8Array(16);
    const view = decodePayload("AQIDBA==", out);
    expect(view).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(view.buffer).toBe(out.buffer);
  });

  it("rejects text that is not base64, saying where", () => {
    const bad = audioError(() => decodePayload("AAAA!AAA"));
    expect(bad.code).toBe("invalid_base64");
    expect(bad.param).toBe("audio");
    expect(bad.message).toContain("'!' at offset 4");
    expect(audioError(() => decodePayload("AA-_")).message).toContain("'-'"); // URL-safe alphabet
    expect(audioError(() => decodePayload("AAAA AAA")).message).toContain("offset 4");
    expect(audioError(() => decodePayload("AAAAA")).message).toContain("impossible");
    expect(audioError(() => decodePayload("AA=A")).message).toContain("after '=' padding");
    expect(audioError(() => decodePayload("AA=")).message).toContain("padding");
    expect(audioError(() => decodePayload("A===")).code).toBe("invalid_base64");
  });

  it("validates append payloads: type, empty, whole samples, size cap", () => {
    expect(audioError(() => decodeAudioPayload(42, PCM24K)).code).toBe("invalid_base64");
    expect(audioError(() => decodeAudioPayload("", PCM24K)).code).toBe("empty_audio");
    expect(audioError(() => decodeAudioPayload("====", PCM24K)).code).toBe("invalid_base64");

    const odd = audioError(() => decodeAudioPayload(encodeBase64(new Uint8Array(3)), PCM24K));
    expect(odd.code).toBe("invalid_audio_length");
    expect(odd.message).toContain("3 bytes");
    expect(decodeAudioPayload(encodeBase64(new Uint8Array(3)), PCMU)).toHaveLength(3); // G.711: any count

    const cap = 96_000; // MAX_APPEND_MS (2 s) of pcm16 at 24 kHz
    expect(MAX_APPEND_MS).toBe(2000);
    expect(decodeAudioPayload(encodeBase64(new Uint8Array(cap)), PCM24K)).toHaveLength(cap);
    const big = audioError(() => decodeAudioPayload(encodeBase64(new Uint8Array(cap + 2)), PCM24K));
    expect(big.code).toBe("audio_too_large");
    expect(big.message).toContain(`at most ${cap} bytes (${MAX_APPEND_MS} ms)`);
    expect(decodeAudioPayload(encodeBase64(new Uint8Array(16_000)), PCMA)).toHaveLength(16_000);
    const g711 = audioError(() => decodeAudioPayload(encodeBase64(new Uint8Array(16_001)), PCMU, { param: "x" }));
    expect([g711.code, g711.param]).toEqual(["audio_too_large", "x"]);
    expect(decodeAudioPayload(encodeBase64(new Uint8Array(960)), PCM24K, { maxMs: 20 })).toHaveLength(960);
    expect(audioError(() => decodeAudioPayload(encodeBase64(new Uint8Array(962)), PCM24K, { maxMs: 20 })).code).toBe(
      "audio_too_large",
    );
  });
});

describe("G.711 μ-law", () => {
  it("has the table's known values", () => {
    expect(muLawEncode(0)).toBe(0xff);
    expect(muLawDecode(0xff)).toBe(0);
    expect(muLawDecode(0x7f)).toBe(0); // −0
    expect(muLawDecode(0xfe)).toBe(8);
    expect(muLawDecode(0x7e)).toBe(-8);
    expect(muLawDecode(0xef)).toBe(132);
    expect(muLawDecode(0x80)).toBe(32124);
    expect(muLawDecode(0x00)).toBe(-32124);
    expect(muLawEncode(32767)).toBe(0x80);
    expect(muLawEncode(-32768)).toBe(0x00);
    expect(muLawEncode(8)).toBe(0xfe);
    expect(muLawEncode(-8)).toBe(0x7e);
  });

  it("encode(decode(code)) === code for every code but 0x7F (−0, which encodes as +0: 0xFF)", () => {
    for (let code = 0; code < 256; code++) {
      expect(muLawEncode(muLawDecode(code)), `code ${code}`).toBe(code === 0x7f ? 0xff : code);
    }
  });

  it("is monotonic over the full 16-bit range, within G.711's quantisation error", () => {
    let previous = -Infinity;
    const used = new Set<number>();
    for (let s = -32768; s <= 32767; s++) {
      const code = muLawEncode(s);
      used.add(code);
      const back = muLawDecode(code);
      if (back < previous || Math.abs(back - s) > g711Tolerance(s)) throw new Error(`μ-law fails at ${s}`);
      previous = back;
    }
    expect(used.size).toBe(256); // -1..-3 quantise to −0 (0x7F)
    const sorted = [...MULAW_TO_PCM16].sort((a, b) => a - b);
    expect(sorted[0]).toBe(-32124);
    expect(sorted.at(-1)).toBe(32124);
  });
});

describe("G.711 A-law", () => {
  it("has the table's known values", () => {
    expect(aLawEncode(0)).toBe(0xd5);
    expect(aLawDecode(0xd5)).toBe(8);
    expect(aLawDecode(0x55)).toBe(-8);
    expect(aLawDecode(0xaa)).toBe(32256);
    expect(aLawDecode(0x2a)).toBe(-32256);
    expect(aLawEncode(32767)).toBe(0xaa);
    expect(aLawEncode(-32768)).toBe(0x2a);
    expect(aLawEncode(-1)).toBe(0x55);
  });

  it("encode(decode(code)) === code for all 256 codes", () => {
    for (let code = 0; code < 256; code++) expect(aLawEncode(aLawDecode(code)), `code ${code}`).toBe(code);
  });

  it("is monotonic over the full 16-bit range, within G.711's quantisation error", () => {
    let previous = -Infinity;
    const used = new Set<number>();
    for (let s = -32768; s <= 32767; s++) {
      const code = aLawEncode(s);
      used.add(code);
      const back = aLawDecode(code);
      if (back < previous || Math.abs(back - s) > g711Tolerance(s)) throw new Error(`A-law fails at ${s}`);
      previous = back;
    }
    expect(used.size).toBe(256);
    expect(new Set(ALAW_TO_PCM16).size).toBe(256);
  });
});

describe("conversions", () => {
  it("reads and writes pcm16 little-endian", () => {
    const bytes = new Uint8Array([0x01, 0x80, 0xff, 0x7f, 0x00, 0x80, 0xff, 0xff]);
    const samples = toInt16(bytes, PCM24K);
    expect([...samples]).toEqual([-32767, 32767, -32768, -1]);
    expect(fromInt16(samples, PCM24K)).toEqual(bytes);
  });

  it("round-trips G.711 bytes through Int16 and reuses output buffers", () => {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const samples = new Int16Array(512);
    const decoded = toInt16(codes, PCMA, samples);
    expect(decoded.buffer).toBe(samples.buffer);
    expect(fromInt16(decoded, PCMA)).toEqual(codes);
    expect(() => toInt16(codes, PCMU, new Int16Array(10))).toThrow(RangeError);
  });
});

describe.skipIf(!voiceFixtures)(
  `G.711 against sox's codec${voiceFixturesMissing ? ` (${voiceFixturesMissing})` : ""}`,
  () => {
    for (const name of ["question-pcmu", "question-pcma"]) {
      it(`${name}: our decoder and encoder agree with sox on real speech`, () => {
        const fixture = voiceFixtures!.fixtures.find((f) => f.name === name)!;
        const format = fixture.format;
        const codes = decodeBase64(fixture.audio);
        const linear = toInt16(decodeBase64(fixture.linear8k!), PCM24K);
        expect(linear).toHaveLength(codes.length);
        const decoded = toInt16(codes, format);
        for (let i = 0; i < codes.length; i++) {
          if (Math.abs(decoded[i]! - linear[i]!) > g711Tolerance(linear[i]!)) throw new Error(`sample ${i}`);
        }
        // sox first rounds to G.711's 14-bit (μ-law) or 13-bit (A-law) input; given the same input, the codes match.
        const step = format.type === "audio/pcmu" ? 4 : 8;
        const rounded = linear.map((s) => Math.min(32768 - step, Math.floor(s / step + 0.5) * step));
        expect(fromInt16(rounded, format)).toEqual(codes);
      });
    }
  },
);
