import type OpenAI from "openai";
import { APIError } from "openai";
import type { ClientSecretCreateResponse } from "openai/resources/realtime/client-secrets";
import type { RealtimeSessionCreateRequest } from "openai/resources/realtime/realtime";
import type { Config } from "../config.ts";
import { ApiError, UpstreamError } from "../errors.ts";
import { openAiClient, upstreamError } from "../llm/openai-client.ts";

// OpenAI's audio endpoints for clients that do not use a realtime session: transcription, speech, and
// client secrets for clients that connect to OpenAI Realtime themselves. Each call maps OpenAI's failures
// to UPSTREAM_* problems as the chat and embedding adapters do (llm/openai-client.ts).

type OpenAiAudioConfig = Pick<Config, "OPENAI_API_KEY" | "OPENAI_BASE_URL">;

/** OpenAI's upload limit for transcription. */
export const MAX_AUDIO_BYTES = 25 * 1024 * 1024;
const TRANSCRIBE_TIMEOUT_MS = 120_000;
/** Speech must start within this long; once it flows, SPEECH_TIMEOUT_MS caps the whole body. */
const SPEECH_FIRST_BYTE_TIMEOUT_MS = 30_000;
const SPEECH_TIMEOUT_MS = 300_000;
const CLIENT_SECRET_TIMEOUT_MS = 15_000;

export const TRANSCRIPTION_MODELS = ["gpt-4o-mini-transcribe", "gpt-4o-transcribe", "whisper-1"] as const;
type TranscriptionModel = (typeof TRANSCRIPTION_MODELS)[number];
export const DEFAULT_TRANSCRIPTION_MODEL: TranscriptionModel = "gpt-4o-mini-transcribe";

/** Speaks every voice below, the realtime ones (marin, cedar...) included. */
const SPEECH_MODEL = "gpt-4o-mini-tts";
export const SPEECH_VOICES = [
  "alloy",
  "ash",
  "ballad",
  "cedar",
  "coral",
  "echo",
  "fable",
  "marin",
  "nova",
  "onyx",
  "sage",
  "shimmer",
  "verse",
] as const;
type SpeechVoice = (typeof SPEECH_VOICES)[number];
export const SPEECH_FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"] as const;
type SpeechFormat = (typeof SPEECH_FORMATS)[number];

/** What each format is on the wire; pcm is raw 24 kHz mono signed 16-bit little-endian samples. */
export const SPEECH_CONTENT_TYPES: Record<SpeechFormat, string> = {
  mp3: "audio/mpeg",
  opus: "audio/ogg; codecs=opus",
  aac: "audio/aac",
  flac: "audio/flac",
  wav: "audio/wav",
  pcm: "audio/pcm; rate=24000; channels=1",
};

/** The preferred voice if speech has it (a preference may name a realtime-only voice), else marin. */
export const speechVoice = (preferred: string | undefined): SpeechVoice =>
  SPEECH_VOICES.find((voice) => voice === preferred) ?? "marin";

/** The key, or 503 saying how to configure one: the audio routes have no local provider. */
export function requireOpenAiKey(config: OpenAiAudioConfig): void {
  if (!config.OPENAI_API_KEY) {
    throw new ApiError("NOT_READY", "No speech provider is configured: set OPENAI_API_KEY.");
  }
}

interface AudioOperation {
  /** "transcription": "OpenAI rejected the transcription request (400)". */
  kind: string;
  /** What a 5xx failed to do. */
  action: string;
  model: string;
  /** What to check when OpenAI does not know the model. */
  check: string;
}

/** upstreamError, with a 404 that names the audio model (openai-client.ts names only chat and embedding). */
function audioUpstreamError(error: unknown, operation: AudioOperation, timeoutMs: number): UpstreamError {
  if (error instanceof APIError && error.status === 404) {
    return new UpstreamError(
      "UPSTREAM_UNAVAILABLE",
      `OpenAI does not know the ${operation.kind} model ${operation.model} (404): ${operation.check}.`,
      { transient: false, cause: error },
    );
  }
  // modelVariable is only read for a 404, answered above.
  return upstreamError(
    error,
    { kind: operation.kind, action: operation.action, modelVariable: "CHAT_MODEL" },
    timeoutMs,
  );
}

/** The containers OpenAI transcribes; it tells them apart by the file name's extension. */
const AUDIO_EXTENSIONS = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"] as const;

const EXTENSION_OF_TYPE: Record<string, string> = {
  "audio/flac": "flac",
  "audio/x-flac": "flac",
  "audio/mpeg": "mp3",
  "audio/mp3": "mp3",
  "audio/mp4": "m4a",
  "audio/m4a": "m4a",
  "audio/x-m4a": "m4a",
  "video/mp4": "mp4",
  "audio/ogg": "ogg",
  "audio/opus": "ogg",
  "audio/wav": "wav",
  "audio/wave": "wav",
  "audio/x-wav": "wav",
  "audio/vnd.wave": "wav",
  "audio/webm": "webm",
  "video/webm": "webm",
};

/** The container from the first bytes, for uploads named "blob" and typed application/octet-stream. */
function sniffExtension(head: Uint8Array): string | undefined {
  const ascii = (from: number, to: number) => String.fromCharCode(...head.subarray(from, to));
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WAVE") return "wav";
  if (ascii(0, 4) === "fLaC") return "flac";
  if (ascii(0, 4) === "OggS") return "ogg";
  if (ascii(0, 3) === "ID3" || (head[0] === 0xff && ((head[1] ?? 0) & 0xe0) === 0xe0)) return "mp3";
  if (head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) return "webm";
  if (ascii(4, 8) === "ftyp") return "m4a";
  return undefined;
}

/**
 * The upload named so OpenAI recognises its container (by extension, else Content-Type, else its first
 * bytes), or 415 naming the formats it takes.
 */
export async function audioUpload(file: File): Promise<File> {
  const extension = /\.([a-z0-9]+)$/i.exec(file.name)?.[1]?.toLowerCase();
  if (extension && (AUDIO_EXTENSIONS as readonly string[]).includes(extension)) return file;
  const type = file.type.split(";")[0]?.trim().toLowerCase() ?? "";
  const found = EXTENSION_OF_TYPE[type] ?? sniffExtension(new Uint8Array(await file.slice(0, 12).arrayBuffer()));
  if (!found) {
    throw new ApiError(
      "UNSUPPORTED_MEDIA_TYPE",
      `The file is not audio OpenAI can transcribe: send ${AUDIO_EXTENSIONS.join(", ")}.`,
    );
  }
  const stem = (file.name || "audio").replace(/\.[^.]*$/, "") || "audio";
  return new File([file], `${stem}.${found}`, { type: file.type });
}

interface TranscribeInput {
  file: File;
  model: TranscriptionModel;
  /** ISO 639-1, e.g. "en"; detected when absent. */
  language?: string | undefined;
  prompt?: string | undefined;
}

export interface Transcript {
  text: string;
  language?: string;
  duration?: number;
}

/** One upload transcribed; whisper-1 answers in verbose JSON, which adds the language and duration. */
export async function transcribe(config: OpenAiAudioConfig, input: TranscribeInput): Promise<Transcript> {
  requireOpenAiKey(config);
  const client = transcriptionClient(config);
  const params = {
    file: input.file,
    model: input.model,
    ...(input.language ? { language: input.language } : {}),
    ...(input.prompt ? { prompt: input.prompt } : {}),
  };
  try {
    if (input.model === "whisper-1") {
      const result = await client.audio.transcriptions.create({ ...params, response_format: "verbose_json" });
      return withOptional({ text: result.text }, result.language, result.duration);
    }
    const result = await client.audio.transcriptions.create({ ...params, response_format: "json" });
    const duration = result.usage?.type === "duration" ? result.usage.seconds : undefined;
    return withOptional({ text: result.text }, input.language ?? result.languages?.[0]?.code, duration);
  } catch (error) {
    throw audioUpstreamError(
      error,
      { kind: "transcription", action: "transcribe the audio", model: input.model, check: "choose another model" },
      TRANSCRIBE_TIMEOUT_MS,
    );
  }
}

let cachedTranscriptionClient: { for: string; client: OpenAI } | undefined;

/** Kept per key and base URL: the SDK probes its fetch for FormData support once per client. */
function transcriptionClient(config: OpenAiAudioConfig): OpenAI {
  const key = `${config.OPENAI_BASE_URL ?? ""} ${config.OPENAI_API_KEY}`;
  if (cachedTranscriptionClient?.for !== key) {
    cachedTranscriptionClient = { for: key, client: openAiClient(config, TRANSCRIBE_TIMEOUT_MS) };
  }
  return cachedTranscriptionClient.client;
}

const withOptional = (transcript: Transcript, language: string | undefined, duration: number | undefined) => ({
  ...transcript,
  ...(language ? { language } : {}),
  ...(typeof duration === "number" && Number.isFinite(duration) ? { duration } : {}),
});

interface SpeechInput {
  text: string;
  voice: SpeechVoice;
  speed: number;
  format: SpeechFormat;
}

/**
 * Speech as a stream of audio bytes, returned once the first bytes have arrived (within
 * SPEECH_FIRST_BYTE_TIMEOUT_MS): until then a failure is still a problem response, not a broken body.
 * Cancelling the stream (the client went away) aborts the upstream request.
 */
export async function synthesize(config: OpenAiAudioConfig, input: SpeechInput): Promise<ReadableStream<Uint8Array>> {
  requireOpenAiKey(config);
  const client = openAiClient(config, SPEECH_TIMEOUT_MS);
  const controller = new AbortController();
  let firstByteMissed = false;
  const firstByte = setTimeout(() => {
    firstByteMissed = true;
    controller.abort();
  }, SPEECH_FIRST_BYTE_TIMEOUT_MS);
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    const response = await client.audio.speech.create(
      { model: SPEECH_MODEL, input: input.text, voice: input.voice, speed: input.speed, response_format: input.format },
      { signal: controller.signal },
    );
    if (!response.body) throw new UpstreamError("UPSTREAM_UNAVAILABLE", "OpenAI sent no audio.", { transient: true });
    reader = response.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    first = await reader.read();
    if (first.done) throw new UpstreamError("UPSTREAM_UNAVAILABLE", "OpenAI sent no audio.", { transient: true });
  } catch (error) {
    controller.abort();
    if (firstByteMissed) {
      throw new UpstreamError("UPSTREAM_TIMEOUT", `OpenAI sent no audio within ${SPEECH_FIRST_BYTE_TIMEOUT_MS} ms.`, {
        transient: true,
        cause: error,
      });
    }
    throw audioUpstreamError(
      error,
      { kind: "speech", action: "synthesize speech", model: SPEECH_MODEL, check: "OPENAI_BASE_URL must offer it" },
      SPEECH_TIMEOUT_MS,
    );
  } finally {
    clearTimeout(firstByte);
  }

  let pending: ReadableStreamReadResult<Uint8Array> | undefined = first;
  return new ReadableStream<Uint8Array>({
    async pull(stream) {
      const chunk = pending ?? (await reader.read());
      pending = undefined;
      if (chunk.done) stream.close();
      else stream.enqueue(chunk.value);
    },
    async cancel(reason) {
      controller.abort();
      await reader.cancel(reason).catch(() => undefined);
    },
  });
}

type RealtimeSessionConfig = Omit<RealtimeSessionCreateRequest, "type">;

/** A short-lived client secret for OpenAI Realtime (GA), bound to the given session configuration. */
export async function mintClientSecret(
  config: OpenAiAudioConfig,
  session: RealtimeSessionConfig & { model: string },
  expiresInSeconds: number,
): Promise<ClientSecretCreateResponse> {
  requireOpenAiKey(config);
  const client = openAiClient(config, CLIENT_SECRET_TIMEOUT_MS);
  try {
    return await client.realtime.clientSecrets.create({
      expires_after: { anchor: "created_at", seconds: expiresInSeconds },
      session: { type: "realtime", ...session },
    });
  } catch (error) {
    throw audioUpstreamError(
      error,
      {
        kind: "realtime",
        action: "create a realtime client secret",
        model: session.model,
        check: "check VOICE_REALTIME_MODEL",
      },
      CLIENT_SECRET_TIMEOUT_MS,
    );
  }
}
