// Speech fixtures for the voice suites (test/workers/voice-*.test.ts), generated in Node at test setup with
// espeak-ng and sox and handed to workerd through inject("stack").voiceFixtures (test/stack.ts).
//
// Each utterance is synthesised, resampled to 24 kHz, peak-normalised to -3 dBFS and trimmed of espeak's own
// leading and trailing silence (sox `silence`, at -50 dB), so the speech boundaries are the known lengths of
// the silence padded around it. Variants: quiet (-18 dB), loud (compressed, peak -0.5 dBFS), white noise at
// about -50 and -40 dBFS RMS under the whole clip, two sentences with a known pause, and 8 kHz G.711 (μ-law
// and A-law, with the 8 kHz pcm16 they encode, for a cross-check of the codecs against sox's).
// The result is cached under node_modules/.cache, keyed by this file's text and the tools' versions.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { VoiceFixture, VoiceFixtures } from "./provided.ts";

const run = promisify(execFile);

const LEAD_S = 0.7;
const TAIL_S = 0.9;
const PAUSE_S = 0.7;
const NOISE_VOL = { low: 0.0079, moderate: 0.025 }; // sox whitenoise `vol`: about -50 and -40 dBFS RMS
const QUESTION = "What is the dose of adrenaline for anaphylaxis?";
const SENTENCES = ["Give adrenaline into the outer thigh.", "Repeat after five minutes if there is no improvement."];
const TRIM = ["silence", "1", "0.005", "-50d", "reverse", "silence", "1", "0.005", "-50d", "reverse"];
const PCM24 = ["-r", "24000", "-c", "1", "-b", "16", "-e", "signed-integer"];
const PCM24_FORMAT = { type: "audio/pcm", rate: 24000 } as const;
const CACHE_DIR = join(process.cwd(), "node_modules", ".cache", "voiceassist");

async function sox(args: string[]): Promise<void> {
  await run("sox", ["-D", "-R", "-V1", ...args]);
}

async function samples(path: string): Promise<number> {
  const { stdout } = await run("soxi", ["-s", path]);
  return Number(stdout.trim());
}

async function version(command: string): Promise<string> {
  const { stdout } = await run(command, ["--version"]);
  return stdout.trim();
}

/** Raw bytes of a WAV (or any sox input) as the given raw encoding. */
async function rawBytes(dir: string, input: string, encoding: string[], effects: string[] = []): Promise<Buffer> {
  const out = join(dir, `${Math.random().toString(36).slice(2)}.raw`);
  await sox([input, "-t", "raw", ...encoding, out, ...effects]);
  return readFile(out);
}

/** Speech for `text`: 24 kHz s16 mono, peak -3 dBFS, espeak's silences trimmed. Returns its length in ms. */
async function speak(dir: string, name: string, text: string): Promise<{ path: string; ms: number }> {
  const raw = join(dir, `${name}.espeak.wav`);
  await run("espeak-ng", ["-v", "en-us", "-s", "165", "-w", raw, text]);
  const path = join(dir, `${name}.wav`);
  await sox([raw, ...PCM24, path, "rate", "24000", "gain", "-n", "-3", ...TRIM]);
  return { path, ms: ((await samples(path)) * 1000) / 24000 };
}

/** `input` with white noise of sox `vol` mixed under the whole of it, as raw bytes. */
async function withNoise(dir: string, input: string, seconds: number, vol: number, encoding: string[]) {
  const noise = join(dir, `noise-${vol}.wav`);
  await sox(["-n", ...PCM24, noise, "synth", seconds.toFixed(4), "whitenoise", "vol", String(vol)]);
  const out = join(dir, `noisy-${vol}.raw`);
  await sox(["-m", "-v", "1", input, "-v", "1", noise, "-t", "raw", ...encoding, out]);
  return readFile(out);
}

async function generate(dir: string, generator: string): Promise<VoiceFixtures> {
  const [question, first, second] = await Promise.all([
    speak(dir, "question", QUESTION),
    ...SENTENCES.map((text, i) => speak(dir, `sentence${i}`, text)),
  ]);
  if (!question || !first || !second) throw new Error("espeak-ng produced no speech");
  const pad = ["pad", String(LEAD_S), String(TAIL_S)];
  const lead = LEAD_S * 1000;
  const single = [{ startMs: lead, endMs: lead + question.ms }];

  const normal = join(dir, "normal.wav");
  const pause = join(dir, "pause.wav");
  const totalS = LEAD_S + question.ms / 1000 + TAIL_S;
  await Promise.all([sox([question.path, normal, ...pad]), sox(["-n", ...PCM24, pause, "trim", "0", String(PAUSE_S)])]);
  const s16 = ["-e", "signed-integer", "-b", "16", "-L", "-c", "1"];
  const pcm8k = join(dir, "normal8k.wav");
  await sox([normal, "-r", "8000", "-b", "16", pcm8k, "rate", "8000"]);

  const [
    normalBytes,
    quietBytes,
    loudBytes,
    noisyBytes,
    noisierBytes,
    pausedBytes,
    ulawBytes,
    alawBytes,
    linear8kBytes,
  ] = await Promise.all([
    rawBytes(dir, normal, s16),
    rawBytes(dir, normal, s16, ["gain", "-18"]),
    rawBytes(dir, normal, s16, ["compand", "0.005,0.1", "-70,-70,-50,-30,-20,-10,0,-3", "0", "-90", "0.05"]),
    withNoise(dir, normal, totalS, NOISE_VOL.low, s16),
    withNoise(dir, normal, totalS, NOISE_VOL.moderate, s16),
    (async () => {
      const joined = join(dir, "paused.wav");
      await sox([first.path, pause, second.path, joined, ...pad]);
      return rawBytes(dir, joined, s16);
    })(),
    rawBytes(dir, pcm8k, ["-e", "u-law", "-b", "8", "-c", "1"]),
    rawBytes(dir, pcm8k, ["-e", "a-law", "-b", "8", "-c", "1"]),
    rawBytes(dir, pcm8k, s16),
  ]);

  const pcmFixture = (
    name: string,
    description: string,
    text: string,
    bytes: Buffer,
    segments = single,
  ): VoiceFixture => ({
    name,
    description,
    text,
    format: PCM24_FORMAT,
    audio: bytes.toString("base64"),
    durationMs: bytes.length / 48,
    segments,
  });
  const pausedStart2 = lead + first.ms + PAUSE_S * 1000;
  const fixtures: VoiceFixture[] = [
    pcmFixture("question", "normal level (peak -3 dBFS)", QUESTION, normalBytes),
    pcmFixture("question-quiet", "18 dB quieter (peak -21 dBFS)", QUESTION, quietBytes),
    pcmFixture("question-loud", "compressed, peak -0.5 dBFS", QUESTION, loudBytes),
    pcmFixture("question-noise", "white noise at about -50 dBFS RMS under the whole clip", QUESTION, noisyBytes),
    pcmFixture("question-noise-40", "white noise at about -40 dBFS RMS under the whole clip", QUESTION, noisierBytes),
    pcmFixture("two-sentences", `two sentences, ${PAUSE_S * 1000} ms apart`, SENTENCES.join(" "), pausedBytes, [
      { startMs: lead, endMs: lead + first.ms },
      { startMs: pausedStart2, endMs: pausedStart2 + second.ms },
    ]),
    {
      name: "question-pcmu",
      description: "normal level at 8 kHz, G.711 μ-law (sox)",
      text: QUESTION,
      format: { type: "audio/pcmu" },
      audio: ulawBytes.toString("base64"),
      durationMs: ulawBytes.length / 8,
      segments: single,
      linear8k: linear8kBytes.toString("base64"),
    },
    {
      name: "question-pcma",
      description: "normal level at 8 kHz, G.711 A-law (sox)",
      text: QUESTION,
      format: { type: "audio/pcma" },
      audio: alawBytes.toString("base64"),
      durationMs: alawBytes.length / 8,
      segments: single,
      linear8k: linear8kBytes.toString("base64"),
    },
  ];
  return { generator, pauseMs: PAUSE_S * 1000, fixtures };
}

export type VoiceFixturesResult =
  | { fixtures: VoiceFixtures; missing?: undefined }
  | { fixtures?: undefined; missing: string };

/**
 * The voice fixtures, from the cache or freshly generated (about a second). When espeak-ng or sox is missing
 * (or fails), `missing` says why and the fixture suites skip.
 */
export async function prepareVoiceFixtures(): Promise<VoiceFixturesResult> {
  let versions: string;
  try {
    versions = `${await version("espeak-ng")}\n${await version("sox")}`;
  } catch {
    return { missing: "espeak-ng and sox are needed to synthesise speech (apt-get install espeak-ng sox)" };
  }
  let script = "voice-fixtures v1";
  try {
    script = await readFile(fileURLToPath(import.meta.url), "utf8");
  } catch {
    // Bundled without its source file: the version string above still keys the cache.
  }
  const key = createHash("sha256").update(script).update(versions).digest("hex").slice(0, 16);
  const cached = join(CACHE_DIR, `voice-fixtures-${key}.json`);
  try {
    if ((await stat(cached)).size > 0) return { fixtures: JSON.parse(await readFile(cached, "utf8")) };
  } catch {
    // Not cached yet.
  }
  const dir = await mkdtemp(join(tmpdir(), "voice-fixtures-"));
  try {
    const fixtures = await generate(dir, `${versions.split("\n")[0]}; ${versions.split("\n")[1]}`);
    await mkdir(CACHE_DIR, { recursive: true });
    const partial = `${cached}.${process.pid}.tmp`;
    await writeFile(partial, JSON.stringify(fixtures));
    await rename(partial, cached);
    for (const file of await readdir(CACHE_DIR)) {
      if (file.startsWith("voice-fixtures-") && !cached.endsWith(file))
        await rm(join(CACHE_DIR, file), { force: true });
    }
    return { fixtures };
  } catch (error) {
    return { missing: `espeak-ng/sox failed to build the voice fixtures: ${(error as Error).message}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
