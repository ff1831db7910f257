import { describe, expect, inject, it } from "vitest";
import { type AudioFormat, decodeAudioPayload } from "../../src/voice/audio.ts";
import {
  DEFAULT_SERVER_VAD,
  EnergyVad,
  parseServerVad,
  type ServerVadConfig,
  VadConfigError,
  type VadEvent,
  vadLevels,
} from "../../src/voice/vad.ts";
import type { VoiceFixture } from "../provided.ts";
import { bytesForMs, decodeBase64, encodeBase64, fromInt16, PCM24K, PCMU } from "./audio-helpers.ts";

const { voiceFixtures, voiceFixturesMissing } = inject("stack");
const TOLERANCE_MS = 100;

/** Streams `bytes` as a client would: base64 append events of `chunkMs`, each validated and fed. */
function stream(bytes: Uint8Array, format: AudioFormat, config: Partial<ServerVadConfig> = {}, chunkMs = 20) {
  const vad = new EnergyVad(config);
  const step = bytesForMs(chunkMs, format);
  const events: VadEvent[] = [];
  for (let offset = 0; offset < bytes.length; offset += step) {
    const payload = encodeBase64(bytes.subarray(offset, offset + step));
    events.push(...vad.feedBytes(decodeAudioPayload(payload, format), format));
  }
  return { vad, events };
}

/** Utterances as [audio_start_ms, audio_end_ms] pairs; throws on events out of order. */
function utterances(events: readonly VadEvent[]): [number, number][] {
  const spans: [number, number][] = [];
  for (let i = 0; i < events.length; i += 2) {
    const started = events[i];
    const stopped = events[i + 1];
    if (started?.type !== "speech_started" || stopped?.type !== "speech_stopped") {
      throw new Error(`events out of order: ${JSON.stringify(events)}`);
    }
    spans.push([started.audio_start_ms, stopped.audio_end_ms]);
  }
  return spans;
}

/** Deterministic PRNG (mulberry32). */
function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const amplitude = (dbfs: number) => 32768 * 10 ** (dbfs / 20);

/** Uniform white noise with RMS `dbfs` (relative to full scale) at 24 kHz. */
function noise(ms: number, dbfs: number, seed = 1, rate = 24000): Int16Array {
  const next = random(seed);
  const peak = amplitude(dbfs) * Math.sqrt(3);
  return Int16Array.from({ length: (ms * rate) / 1000 }, () => Math.round((next() * 2 - 1) * peak));
}

/** A 200 Hz tone with RMS `dbfs` from startMs to endMs over `base` (24 kHz). */
function addTone(base: Int16Array, startMs: number, endMs: number, dbfs: number): Int16Array {
  const out = base.slice();
  const a = amplitude(dbfs) * Math.SQRT2;
  for (let i = startMs * 24; i < endMs * 24; i++) {
    out[i] = Math.max(-32768, Math.min(32767, out[i]! + Math.round(a * Math.sin((2 * Math.PI * 200 * i) / 24000))));
  }
  return out;
}

const pcmBytes = (samples: Int16Array) => fromInt16(samples, PCM24K);

describe("server VAD configuration", () => {
  it("defaults and reads the GA turn_detection shape", () => {
    expect(parseServerVad({ type: "server_vad" })).toEqual(DEFAULT_SERVER_VAD);
    expect(
      parseServerVad({ type: "server_vad", threshold: 0.7, prefix_padding_ms: 100, silence_duration_ms: 200 }),
    ).toEqual({ threshold: 0.7, prefixPaddingMs: 100, silenceDurationMs: 200 });
  });

  it("names the offending field", () => {
    const cases: [unknown, string][] = [
      [{ type: "semantic_vad" }, "session.audio.input.turn_detection.type"],
      [{ type: "server_vad", threshold: 1.5 }, "session.audio.input.turn_detection.threshold"],
      [{ type: "server_vad", silence_duration_ms: 12.5 }, "session.audio.input.turn_detection.silence_duration_ms"],
      [{ type: "server_vad", prefix_padding_ms: "300" }, "session.audio.input.turn_detection.prefix_padding_ms"],
      ["server_vad", "session.audio.input.turn_detection"],
    ];
    for (const [value, param] of cases) {
      try {
        parseServerVad(value);
        throw new Error(`accepted ${JSON.stringify(value)}`);
      } catch (error) {
        expect(error).toBeInstanceOf(VadConfigError);
        expect((error as VadConfigError).param).toBe(param);
        expect((error as Error).message).toContain(param);
      }
    }
  });

  it("maps threshold to a margin over the noise floor and an absolute minimum (0.5: 15 dB, -45 dBFS)", () => {
    expect(vadLevels(0.5)).toEqual({ marginDb: 15, minimumDbfs: -45 });
    expect(vadLevels(0)).toEqual({ marginDb: 5, minimumDbfs: -65 });
    expect(vadLevels(1)).toEqual({ marginDb: 25, minimumDbfs: -25 });
  });
});

describe("energy VAD on synthetic audio", () => {
  it("stays quiet on digital silence and on low or steady noise", () => {
    expect(stream(new Uint8Array(bytesForMs(5000, PCM24K)), PCM24K).events).toEqual([]);
    for (const level of [-60, -50, -40]) {
      const { vad, events } = stream(pcmBytes(noise(5000, level, level)), PCM24K);
      expect(events, `noise at ${level} dBFS`).toEqual([]);
      expect(Math.abs(vad.noiseFloorDbfs - level)).toBeLessThan(2);
    }
    const silentUlaw = new Uint8Array(bytesForMs(3000, PCMU)).fill(0xff);
    expect(stream(silentUlaw, PCMU).events).toEqual([]);
  });

  it("finds a tone burst's boundaries to the frame, over silence and over noise", () => {
    const clean = stream(pcmBytes(addTone(new Int16Array(24 * 3000), 1000, 2000, -20)), PCM24K);
    expect(utterances(clean.events)).toEqual([[1000, 2000]]);
    const noisy = stream(pcmBytes(addTone(noise(3000, -50), 1000, 2000, -25)), PCM24K);
    expect(utterances(noisy.events)).toEqual([[1000, 2000]]);
  });

  it("ignores bursts shorter than the minimum speech time", () => {
    const click = addTone(new Int16Array(24 * 2000), 500, 530, -10);
    expect(stream(pcmBytes(click), PCM24K).events).toEqual([]);
  });

  it("reports the same events whatever the chunking, and counts time in samples", () => {
    const bytes = pcmBytes(addTone(addTone(noise(4000, -55), 700, 1500, -25), 2500, 3100, -30));
    const byFrame = stream(bytes, PCM24K).events;
    expect(utterances(byFrame)).toEqual([
      [700, 1500],
      [2500, 3100],
    ]);
    const odd = new EnergyVad();
    const events: VadEvent[] = [];
    for (let i = 0; i < bytes.length; i += 14) events.push(...odd.feedBytes(bytes.subarray(i, i + 14), PCM24K));
    expect(events).toEqual(byFrame);
    const whole = new EnergyVad();
    expect(whole.feedBytes(bytes, PCM24K)).toEqual(byFrame);
    expect(whole.elapsedMs).toBe(4000);
  });

  it("stops after silence_duration_ms, dating the end to the last voiced frame", () => {
    const bytes = pcmBytes(addTone(new Int16Array(24 * 3000), 500, 1200, -20));
    const vad = new EnergyVad({ silenceDurationMs: 500 });
    const step = bytesForMs(20, PCM24K);
    let stoppedAt = -1;
    for (let offset = 0; offset < bytes.length && stoppedAt < 0; offset += step) {
      const events = vad.feedBytes(bytes.subarray(offset, offset + step), PCM24K);
      if (events.some((e) => e.type === "speech_stopped")) {
        expect(events).toEqual([{ type: "speech_stopped", audio_end_ms: 1200 }]);
        stoppedAt = vad.elapsedMs;
      }
    }
    expect(stoppedAt).toBe(1700);
  });

  it("keeps prefix padding out of audio_start_ms and exposes it for the committed item", () => {
    const bytes = pcmBytes(addTone(new Int16Array(24 * 2000), 800, 1400, -20));
    const { vad, events } = stream(bytes, PCM24K, { prefixPaddingMs: 300 });
    const started = events[0];
    expect(started).toEqual({ type: "speech_started", audio_start_ms: 800 });
    expect(vad.paddedStartMs(800)).toBe(500);
    expect(vad.paddedStartMs(100)).toBe(0);
  });

  it("finish() ends speech in progress; reset() forgets it", () => {
    const bytes = pcmBytes(addTone(new Int16Array(24 * 1000), 300, 1000, -20));
    const a = stream(bytes, PCM24K);
    expect(a.events).toEqual([{ type: "speech_started", audio_start_ms: 300 }]);
    expect(a.vad.speaking).toBe(true);
    expect(a.vad.finish()).toEqual([{ type: "speech_stopped", audio_end_ms: 1000 }]);
    expect(a.vad.finish()).toEqual([]);
    const b = stream(bytes, PCM24K);
    b.vad.reset();
    expect(b.vad.speaking).toBe(false);
    expect(b.vad.feedBytes(new Uint8Array(bytesForMs(1000, PCM24K)), PCM24K)).toEqual([]);
  });

  it("keeps one clock across a format change", () => {
    const vad = new EnergyVad();
    vad.feedBytes(new Uint8Array(bytesForMs(1000, PCM24K)), PCM24K);
    const tone = addTone(new Int16Array(24 * 1000), 0, 1000, -20);
    const ulaw = fromInt16(
      tone.filter((_, i) => i % 3 === 0),
      PCMU,
    );
    expect(vad.feedBytes(ulaw, PCMU)).toEqual([{ type: "speech_started", audio_start_ms: 1000 }]);
    expect(vad.elapsedMs).toBe(2000);
  });

  it("needs louder speech as threshold rises (the documented direction)", () => {
    const quietest = (threshold: number, floor: Int16Array) => {
      for (let level = -70; level <= 0; level += 1) {
        const events = stream(pcmBytes(addTone(floor, 1000, 1600, level)), PCM24K, { threshold }).events;
        if (events.length > 0) return level;
      }
      return Number.POSITIVE_INFINITY;
    };
    const silent = new Int16Array(24 * 2000);
    const noisy = noise(2000, -45, 7);
    const levels = [0, 0.25, 0.5, 0.75, 1].map((t) => [quietest(t, silent), quietest(t, noisy)] as const);
    for (let i = 1; i < levels.length; i++) {
      expect(levels[i]![0]).toBeGreaterThan(levels[i - 1]![0]);
      expect(levels[i]![1]).toBeGreaterThan(levels[i - 1]![1]);
    }
    // 0.5 over digital silence: the absolute minimum; over -45 dBFS noise: 15 dB above the floor.
    expect(Math.abs(levels[2]![0] - -45)).toBeLessThanOrEqual(1);
    expect(Math.abs(levels[2]![1] - (-45 + 15))).toBeLessThanOrEqual(2);
  });
});

const reason = voiceFixturesMissing ? ` (skipped: ${voiceFixturesMissing})` : "";

describe.skipIf(!voiceFixtures)(`energy VAD on espeak-ng speech${reason}`, () => {
  const fixtures = voiceFixtures?.fixtures ?? [];
  const fixture = (name: string) => fixtures.find((f) => f.name === name) as VoiceFixture;
  const run = (f: VoiceFixture, config: Partial<ServerVadConfig> = {}) =>
    stream(decodeBase64(f.audio), f.format, config).events;

  for (const f of fixtures) {
    if (f.name === "two-sentences") continue;
    it(`${f.name} (${f.description}): one utterance within ±${TOLERANCE_MS} ms of the manifest`, () => {
      const spans = utterances(run(f));
      const expected = f.segments.map((s) => [s.startMs, s.endMs] as const);
      expect(spans).toHaveLength(expected.length);
      spans.forEach(([start, end], i) => {
        const [wantStart, wantEnd] = expected[i]!;
        expect(Math.abs(start - wantStart)).toBeLessThanOrEqual(TOLERANCE_MS);
        expect(Math.abs(end - wantEnd)).toBeLessThanOrEqual(TOLERANCE_MS);
      });
    });
  }

  it("two sentences: a pause shorter than silence_duration_ms stays one utterance, a longer one splits", () => {
    const f = fixture("two-sentences");
    const pause = voiceFixtures!.pauseMs;
    const [first, second] = f.segments as [VoiceFixture["segments"][0], VoiceFixture["segments"][0]];

    // pause + 150 ms still fits in the fixture's 900 ms tail, so the stop arrives before the stream ends.
    const joined = utterances(run(f, { silenceDurationMs: pause + 150 }));
    expect(joined).toHaveLength(1);
    expect(Math.abs(joined[0]![0] - first.startMs)).toBeLessThanOrEqual(TOLERANCE_MS);
    expect(Math.abs(joined[0]![1] - second.endMs)).toBeLessThanOrEqual(TOLERANCE_MS);

    for (const silenceDurationMs of [pause - 200, 200]) {
      const split = utterances(run(f, { silenceDurationMs }));
      expect(split, `silence_duration_ms ${silenceDurationMs}`).toHaveLength(2);
      split.forEach(([start, end], i) => {
        const want = f.segments[i]!;
        expect(Math.abs(start - want.startMs)).toBeLessThanOrEqual(TOLERANCE_MS);
        expect(Math.abs(end - want.endMs)).toBeLessThanOrEqual(TOLERANCE_MS);
      });
    }
  });

  it("threshold: quiet speech passes at 0.5 and is ignored at 0.9; normal speech passes at both", () => {
    expect(utterances(run(fixture("question-quiet"), { threshold: 0.5 }))).toHaveLength(1);
    expect(run(fixture("question-quiet"), { threshold: 0.9 })).toEqual([]);
    expect(utterances(run(fixture("question"), { threshold: 0.9 }))).toHaveLength(1);
    expect(utterances(run(fixture("question-noise"), { threshold: 0.9 }))).toHaveLength(1);
  });

  it("the noise under the noisy fixture alone starts nothing", () => {
    const f = fixture("question-noise");
    const bytes = decodeBase64(f.audio).subarray(0, bytesForMs(f.segments[0]!.startMs - 50, PCM24K));
    const { vad, events } = stream(bytes, PCM24K);
    expect(events).toEqual([]);
    expect(vad.noiseFloorDbfs).toBeGreaterThan(-55);
    expect(vad.noiseFloorDbfs).toBeLessThan(-45);
  });
});
