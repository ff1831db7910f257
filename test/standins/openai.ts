import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  closeServer,
  createLocalServer,
  listenOnFreePort,
  RequestError,
  readBody,
  sendJson,
} from "../../scripts/local-stack/http.ts";
import { fakeEmbedding } from "./fake-embedding.ts";

/**
 * A local OpenAI-compatible server for tests of the real `openai` SDK (no model can be reached from
 * here). Responses follow the shapes of api.openai.com/v1; vectors are deterministic (fake-embedding.ts).
 *
 * Chat completions (streamed or not) answer from the numbered sources of the system prompt ("[n] title"
 * then its text): the first sentence of each of the first three, cited as [n]. A last user message with
 * "!reply <text>" gets exactly <text> (e.g. a citation of a source that does not exist). A rerank call
 * (system prompt "You judge the relevance of passages...") gets JSON scores instead: see rerankReply.
 *
 * Scripted faults: a line "!fault ..." at the start of the first input (embeddings) or of a line of the
 * last user message (chat) makes the request misbehave, e.g.
 *   "!fault status=429 retry-after=1 times=1 key=<unique>"  429 with Retry-After for the first request of <key>
 *   "!fault status=500 key=<unique>"                        500 every time
 *   "!fault status=hang key=<unique>"                       never answers (until the client gives up)
 * and, for streamed chat only, after N (default 1) content chunks:
 *   "!fault stall-after=N"   stops sending, without ending the response
 *   "!fault malformed=N"     sends a data line that is not JSON, then ends the response
 *   "!fault truncate=N"      ends the response without a finish_reason or [DONE]
 *   "!fault no-choices=N"    sends a chunk without `choices` (and without usage), then goes on
 *   "!fault slow=MS"         waits MS before each chunk
 *   "!fault no-usage"        sends no usage chunk, as servers that ignore stream_options
 * An API key starting with "sk-invalid" gets a 401. GET /__requests?contains=<text> lists the requests
 * whose body contains <text>, headers included, so tests can check batching and trace headers; `aborted`
 * says the client closed the connection before the response ended. Add routes as adapters arrive.
 *
 * Audio (handlers at the end of this file): transcriptions (multipart; "!transcript <text>" in `prompt`
 * gets exactly <text>, else "stand-in transcript of N bytes"), speech (a 440 Hz tone, 10 ms per character
 * of `input`, streamed in chunks; wav and pcm are real audio, the other formats are the right magic bytes
 * then the same samples) and Realtime client secrets (the session echoed). A "!fault" line in `prompt`,
 * `input` or the session's `instructions` scripts their failures.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  aborted: boolean;
}

/** A scripted fault's settings: "!fault status=500 truncate" is { status: "500", truncate: "" }. */
type Fault = Record<string, string>;

interface RouteContext {
  body: unknown;
  headers: IncomingHttpHeaders;
  response: ServerResponse;
  fault: Fault | undefined;
}

interface Route {
  handle(context: RouteContext): void | Promise<void>;
  /** The text whose "!fault" line scripts this route's failures. */
  faultText(body: unknown): unknown;
  /** Turns the raw body into what the route handles and the log records; JSON by default. */
  parse?(raw: Buffer, headers: IncomingHttpHeaders): unknown | Promise<unknown>;
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_INPUTS = 2048;
const MODEL_DIMENSIONS: Record<string, number> = {
  "text-embedding-3-small": 1536,
  "text-embedding-3-large": 3072,
  "text-embedding-ada-002": 1536,
};

const routes: Record<string, Route> = {
  "POST /v1/embeddings": {
    handle: embeddings,
    faultText: (body) => {
      const input = (body as { input?: unknown }).input;
      return Array.isArray(input) ? input[0] : input;
    },
  },
  "POST /v1/chat/completions": { handle: chatCompletions, faultText: lastUserMessage },
  "POST /v1/audio/transcriptions": {
    handle: transcriptions,
    faultText: (body) => (body as { prompt?: unknown }).prompt,
    parse: parseMultipart,
  },
  "POST /v1/audio/speech": { handle: speech, faultText: (body) => (body as { input?: unknown }).input },
  "POST /v1/realtime/client_secrets": {
    handle: clientSecrets,
    faultText: (body) => (body as { session?: { instructions?: unknown } }).session?.instructions,
  },
};

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new RequestError(400, "request body is not valid JSON");
  }
}

export async function startOpenAiStandIn(): Promise<{ url: string; stop(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const faultCounts = new Map<string, number>();

  const server = createLocalServer(async (request, response) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    try {
      if (request.method === "GET" && path === "/__requests") {
        const contains = new URL(request.url ?? "/", "http://standin").searchParams.get("contains") ?? "";
        sendJson(
          response,
          200,
          requests.filter((r) => JSON.stringify(r.body).includes(contains)),
        );
        return;
      }
      const route = routes[`${request.method} ${path}`];
      if (!route) {
        openAiError(
          response,
          404,
          `Unknown request URL: ${request.method} ${path}.`,
          "invalid_request_error",
          "unknown_url",
        );
        return;
      }
      const raw = await readBody(request, MAX_BODY_BYTES);
      const body = await (route.parse ?? parseJson)(raw, request.headers);
      const recorded: RecordedRequest = {
        method: request.method ?? "",
        path,
        headers: request.headers,
        body,
        aborted: false,
      };
      requests.push(recorded);
      response.on("close", () => {
        recorded.aborted = !response.writableEnded;
      });
      const key = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
      if (!key || key.startsWith("sk-invalid")) {
        openAiError(response, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
        return;
      }
      const fault = scriptedFault(route.faultText(body), faultCounts);
      if (failRequest(fault, response)) return;
      await route.handle({ body, headers: request.headers, response, fault });
    } catch (error) {
      const status = error instanceof RequestError ? error.status : 500;
      openAiError(response, status, (error as Error).message, status < 500 ? "invalid_request_error" : "server_error");
    }
  });
  const port = await listenOnFreePort(server);
  return { url: `http://127.0.0.1:${port}`, stop: () => closeServer(server) };
}

/** OpenAI's error envelope. */
function openAiError(response: ServerResponse, status: number, message: string, type: string, code?: string): void {
  sendJson(response, status, { error: { message, type, param: null, code: code ?? null } });
}

/** OpenAI's answer to an unknown model. */
function modelNotFound(response: ServerResponse, model: unknown): void {
  openAiError(
    response,
    404,
    `The model \`${String(model)}\` does not exist.`,
    "invalid_request_error",
    "model_not_found",
  );
}

/** The fault a "!fault k=v ..." line scripts, while its `times` last (counted per `key`). */
function scriptedFault(text: unknown, counts: Map<string, number>): Fault | undefined {
  const line = typeof text === "string" ? /^!fault (.+)$/m.exec(text)?.[1] : undefined;
  if (!line) return undefined;
  const fault: Fault = Object.fromEntries(
    line
      .trim()
      .split(/\s+/)
      .map((pair) => {
        const [name, value = ""] = pair.split("=");
        return [name, value];
      }),
  );
  const key = fault.key ?? line;
  const seen = counts.get(key) ?? 0;
  if (seen >= Number(fault.times ?? Number.POSITIVE_INFINITY)) return undefined;
  counts.set(key, seen + 1);
  return fault;
}

/** Answers a fault that fails the whole request (status=...); true when it did. */
function failRequest(fault: Fault | undefined, response: ServerResponse): boolean {
  if (!fault?.status) return false;
  if (fault.status === "hang") return true; // closed when the client aborts or the server stops
  const status = Number(fault.status);
  if (status === 429) {
    response.setHeader("retry-after", fault["retry-after"] ?? "1");
    openAiError(response, 429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded");
  } else {
    openAiError(
      response,
      status,
      `Scripted failure (${status}).`,
      status < 500 ? "invalid_request_error" : "server_error",
    );
  }
  return true;
}

function embeddings({ body, response }: RouteContext): void {
  const { model, input, dimensions, encoding_format: format = "float" } = body as Record<string, unknown>;
  if (typeof model !== "string" || !(model in MODEL_DIMENSIONS)) {
    modelNotFound(response, model);
    return;
  }
  const inputs = typeof input === "string" ? [input] : input;
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_INPUTS) {
    openAiError(response, 400, `'$.input' must be a string or 1..${MAX_INPUTS} strings.`, "invalid_request_error");
    return;
  }
  if (inputs.some((text) => typeof text !== "string" || text.length === 0)) {
    openAiError(response, 400, "'$.input' is invalid: empty strings are not allowed.", "invalid_request_error");
    return;
  }
  if (dimensions !== undefined && (!Number.isInteger(dimensions) || (dimensions as number) < 1)) {
    openAiError(response, 400, "'dimensions' must be a positive integer.", "invalid_request_error");
    return;
  }
  if (format !== "float" && format !== "base64") {
    openAiError(response, 400, "'encoding_format' must be 'float' or 'base64'.", "invalid_request_error");
    return;
  }
  const size = (dimensions as number | undefined) ?? (MODEL_DIMENSIONS[model] as number);
  const tokens = (inputs as string[]).reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
  sendJson(response, 200, {
    object: "list",
    data: (inputs as string[]).map((text, index) => {
      const vector = fakeEmbedding(text, size);
      return {
        object: "embedding",
        index,
        // base64 is the little-endian float32 array, as the SDK expects by default.
        embedding: format === "base64" ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector,
      };
    }),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

interface ChatMessageBody {
  role: string;
  content: string;
}

const NOT_COVERED = "The sources do not cover this question.";
const MAX_CITED = 3;

function lastUserMessage(body: unknown): string | undefined {
  const messages = (body as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return undefined;
  return (messages as ChatMessageBody[]).findLast((m) => m?.role === "user")?.content;
}

/** Begins the rerank judge's system prompt (src/rag/llm-rerank.ts). */
const RERANK_MARKER = "You judge the relevance of passages";

/**
 * The rerank judge's reply: {"scores":[{id, score}]}, a passage's score being how many distinct words of
 * the query (lower-cased, 3+ letters; "!" lines left out) its text holds, at most 10. "!reply <text>" on
 * a line of the query gets exactly <text> (e.g. not JSON, or a passage left unscored).
 */
function rerankReply(user: string): string {
  const query = /<query>\n([\s\S]*?)\n<\/query>/.exec(user)?.[1] ?? "";
  const scripted = /^!reply (.*)$/m.exec(query)?.[1];
  if (scripted !== undefined) return scripted;
  const words = (text: string) => new Set(text.toLowerCase().match(/[a-z]{3,}/g) ?? []);
  const asked = words(
    query
      .split("\n")
      .filter((line) => !line.startsWith("!"))
      .join("\n"),
  );
  const scores = [...user.matchAll(/<passage id="(\d+)">\n([\s\S]*?)\n<\/passage>/g)].map(([, id, text]) => {
    const held = words(text ?? "");
    return { id: Number(id), score: Math.min(10, [...asked].filter((word) => held.has(word)).length) };
  });
  return JSON.stringify({ scores });
}

/** "!reply <text>" in the last user message, else the first sentence of each numbered source, cited. */
function chatReply(messages: ChatMessageBody[]): string {
  if (messages.some((m) => m.role === "system" && m.content.startsWith(RERANK_MARKER))) {
    return rerankReply(lastUserMessage({ messages }) ?? "");
  }
  const scripted = /!reply ([\s\S]*)$/.exec(lastUserMessage({ messages }) ?? "")?.[1];
  if (scripted !== undefined) return scripted;
  const system = messages
    .filter((m) => m.role === "system")
    .map((m) => m.content)
    .join("\n");
  // split() with a capture group: [preamble, n, text, n, text, ...]; a source's title line is dropped.
  const parts = system.split(/^\[(\d+)\][^\n]*\n/m);
  const cited: string[] = [];
  for (let i = 1; i + 1 < parts.length && cited.length < MAX_CITED; i += 2) {
    const sentence = (parts[i + 1] as string)
      .trim()
      .split(/(?<=[.!?])\s+/)[0]
      ?.replace(/[.!?]+$/, "");
    if (sentence) cited.push(`${sentence} [${parts[i]}].`);
  }
  return cited.length ? cited.join(" ") : NOT_COVERED;
}

async function chatCompletions({ body, response, fault }: RouteContext): Promise<void> {
  const { model, messages, stream, stream_options: streamOptions, ...rest } = body as Record<string, unknown>;
  const limit = rest.max_completion_tokens ?? rest.max_tokens;
  if (typeof model !== "string" || model.length === 0) {
    openAiError(response, 400, "'model' is required.", "invalid_request_error");
    return;
  }
  if (
    !Array.isArray(messages) ||
    messages.length === 0 ||
    messages.some((m) => typeof m?.role !== "string" || typeof m?.content !== "string")
  ) {
    openAiError(response, 400, "'$.messages' must be 1 or more {role, content} messages.", "invalid_request_error");
    return;
  }
  if (limit !== undefined && limit !== null && (!Number.isInteger(limit) || (limit as number) < 1)) {
    openAiError(response, 400, "'max_tokens' must be a positive integer.", "invalid_request_error");
    return;
  }
  let reply = chatReply(messages as ChatMessageBody[]);
  // Tokens are estimated as 4 characters, as the app does.
  const cut = typeof limit === "number" && reply.length > limit * 4;
  if (cut) reply = reply.slice(0, limit * 4);
  const finishReason = cut ? "length" : "stop";
  const promptChars = (messages as ChatMessageBody[]).reduce((sum, m) => sum + m.content.length, 0);
  const [promptTokens, completionTokens] = [Math.ceil(promptChars / 4), Math.ceil(reply.length / 4)];
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
  const head = {
    id: `chatcmpl-${randomUUID()}`,
    created: Math.floor(Date.now() / 1000),
    model,
    system_fingerprint: null,
  };
  if (stream !== true) {
    sendJson(response, 200, {
      ...head,
      object: "chat.completion",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: reply, refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage,
    });
    return;
  }

  const withUsage =
    (streamOptions as { include_usage?: unknown } | undefined)?.include_usage === true &&
    fault?.["no-usage"] === undefined;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ ...head, object: "chat.completion.chunk", choices, ...(withUsage ? { usage: null } : {}), ...extra })}\n\n`;
  const delta = (content: Record<string, unknown>, finish: string | null = null) =>
    chunk([{ index: 0, delta: content, logprobs: null, finish_reason: finish }]);
  const after = (name: string) => (fault?.[name] === undefined ? -1 : Number(fault[name] || 1));
  const slowMs = Number(fault?.slow ?? 0);

  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  response.write(delta({ role: "assistant", content: "", refusal: null }));
  const pieces = reply.match(/\S+\s*/g) ?? [];
  for (let i = 0; i <= pieces.length; i++) {
    if (i === after("stall-after")) return; // left open until the client gives up or the server stops
    if (i === after("malformed")) {
      response.end('data: {"id": "chatcmpl-broken", "choices": [\n\n');
      return;
    }
    if (i === after("truncate")) {
      response.end();
      return;
    }
    if (i === after("no-choices")) response.write(chunk([], { choices: undefined }));
    if (i === pieces.length) break;
    if (slowMs) await sleep(slowMs);
    if (response.destroyed) return;
    response.write(delta({ content: pieces[i] }));
  }
  response.write(delta({}, finishReason));
  if (withUsage) response.write(chunk([], { usage }));
  response.end("data: [DONE]\n\n");
}

/** An uploaded file as the log records it: no bytes, but what the audio routes answer from. */
interface UploadedFile {
  filename: string;
  type: string;
  size: number;
  /** From the WAV header, else assuming 16 kHz 16-bit mono. */
  seconds: number;
}

/** A multipart body as an object of its fields, files as UploadedFile. */
async function parseMultipart(raw: Buffer, headers: IncomingHttpHeaders): Promise<Record<string, unknown>> {
  const type = headers["content-type"] ?? "";
  if (!type.startsWith("multipart/form-data")) throw new RequestError(400, "expected multipart/form-data");
  let form: FormData;
  try {
    form = await new Response(raw, { headers: { "content-type": type } }).formData();
  } catch {
    throw new RequestError(400, "the multipart body could not be parsed");
  }
  const fields: Record<string, unknown> = {};
  for (const [name, value] of form.entries()) {
    if (typeof value === "string") {
      fields[name] = value;
      continue;
    }
    const bytes = Buffer.from(await value.arrayBuffer());
    fields[name] = { filename: value.name, type: value.type, size: bytes.length, seconds: audioSeconds(bytes) };
  }
  return fields;
}

function audioSeconds(bytes: Buffer): number {
  const isWav =
    bytes.length >= 44 && bytes.toString("ascii", 0, 4) === "RIFF" && bytes.toString("ascii", 8, 12) === "WAVE";
  const byteRate = isWav ? bytes.readUInt32LE(28) : 32_000;
  return Math.round(((isWav ? bytes.length - 44 : bytes.length) / (byteRate || 32_000)) * 1000) / 1000;
}

const TRANSCRIPTION_MODELS = [
  "whisper-1",
  "gpt-4o-transcribe",
  "gpt-4o-mini-transcribe",
  "gpt-4o-mini-transcribe-2025-12-15",
  "gpt-transcribe",
];
const TRANSCRIBABLE = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"];
const LANGUAGE_NAMES: Record<string, string> = { en: "english", fr: "french", de: "german", es: "spanish" };

function transcriptions({ body, response }: RouteContext): void {
  const fields = body as Record<string, unknown>;
  const { model, file, prompt, language, response_format: format = "json" } = fields;
  if (typeof model !== "string" || !TRANSCRIPTION_MODELS.includes(model)) {
    modelNotFound(response, model);
    return;
  }
  if (typeof file !== "object" || file === null) {
    openAiError(response, 400, "'file' is required.", "invalid_request_error");
    return;
  }
  const upload = file as UploadedFile;
  const extension = /\.([a-z0-9]+)$/i.exec(upload.filename)?.[1]?.toLowerCase() ?? "";
  if (!TRANSCRIBABLE.includes(extension)) {
    openAiError(
      response,
      400,
      `Invalid file format. Supported formats: ${JSON.stringify(TRANSCRIBABLE)}`,
      "invalid_request_error",
    );
    return;
  }
  const scripted = typeof prompt === "string" ? /^!transcript (.*)$/m.exec(prompt)?.[1] : undefined;
  const text = scripted ?? `stand-in transcript of ${upload.size} bytes`;
  if (format === "text") {
    response.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    response.end(text);
    return;
  }
  if (format === "verbose_json") {
    if (model !== "whisper-1") {
      openAiError(
        response,
        400,
        `response_format 'verbose_json' is not compatible with model '${model}'.`,
        "invalid_request_error",
      );
      return;
    }
    const code = typeof language === "string" ? language : "en";
    sendJson(response, 200, {
      task: "transcribe",
      language: LANGUAGE_NAMES[code] ?? code,
      duration: upload.seconds,
      text,
      segments: [],
      usage: { type: "duration", seconds: Math.ceil(upload.seconds) },
    });
    return;
  }
  if (format !== "json") {
    openAiError(response, 400, `Unsupported response_format '${String(format)}'.`, "invalid_request_error");
    return;
  }
  const outputTokens = Math.ceil(text.length / 4);
  const audioTokens = Math.ceil(upload.seconds * 10);
  sendJson(response, 200, {
    text,
    usage:
      model === "whisper-1"
        ? { type: "duration", seconds: Math.ceil(upload.seconds) }
        : {
            type: "tokens",
            input_tokens: audioTokens,
            output_tokens: outputTokens,
            total_tokens: audioTokens + outputTokens,
            input_token_details: { audio_tokens: audioTokens, text_tokens: 0 },
          },
  });
}

const SPEECH_MODELS = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"];
const SPEECH_VOICES = [
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
];
const SPEECH_RATE = 24_000;
/** Samples of tone per character of input: 10 ms. */
const SAMPLES_PER_CHARACTER = SPEECH_RATE / 100;
const SPEECH_FORMATS: Record<string, { type: string; magic: Buffer }> = {
  mp3: { type: "audio/mpeg", magic: Buffer.from("ID3\x04\x00\x00\x00\x00\x00\x00", "latin1") },
  opus: { type: "audio/opus", magic: Buffer.from("OggS\x00\x02", "latin1") },
  aac: { type: "audio/aac", magic: Buffer.from([0xff, 0xf1, 0x50, 0x80]) },
  flac: { type: "audio/flac", magic: Buffer.from("fLaC", "latin1") },
  wav: { type: "audio/wav", magic: Buffer.alloc(0) },
  pcm: { type: "audio/pcm", magic: Buffer.alloc(0) },
};

/** A 440 Hz tone, 16-bit little-endian mono at 24 kHz. */
function tone(samples: number): Buffer {
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    pcm.writeInt16LE(Math.round(8_000 * Math.sin((2 * Math.PI * 440 * i) / SPEECH_RATE)), i * 2);
  }
  return pcm;
}

function wavHeader(dataBytes: number): Buffer {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(SPEECH_RATE, 24);
  header.writeUInt32LE(SPEECH_RATE * 2, 28); // byte rate
  header.writeUInt16LE(2, 32); // block align
  header.writeUInt16LE(16, 34); // bits per sample
  header.write("data", 36, "ascii");
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

/** The bytes the stand-in speaks for `input` in `format`. */
function standInSpeech(input: string, format: string): Buffer {
  const pcm = tone(input.length * SAMPLES_PER_CHARACTER);
  if (format === "wav") return Buffer.concat([wavHeader(pcm.length), pcm]);
  return Buffer.concat([SPEECH_FORMATS[format]?.magic ?? Buffer.alloc(0), pcm]);
}

async function speech({ body, response }: RouteContext): Promise<void> {
  const { model, input, voice, speed = 1, response_format: format = "mp3" } = body as Record<string, unknown>;
  if (typeof model !== "string" || !SPEECH_MODELS.includes(model)) {
    modelNotFound(response, model);
    return;
  }
  if (typeof input !== "string" || input.length === 0 || input.length > 4096) {
    openAiError(response, 400, "'input' must be 1 to 4096 characters.", "invalid_request_error");
    return;
  }
  if (typeof voice !== "string" || !SPEECH_VOICES.includes(voice)) {
    openAiError(response, 400, `'voice' must be one of ${SPEECH_VOICES.join(", ")}.`, "invalid_request_error");
    return;
  }
  if (typeof speed !== "number" || speed < 0.25 || speed > 4) {
    openAiError(response, 400, "'speed' must be between 0.25 and 4.", "invalid_request_error");
    return;
  }
  const spec = typeof format === "string" ? SPEECH_FORMATS[format] : undefined;
  if (!spec) {
    openAiError(
      response,
      400,
      `'response_format' must be one of ${Object.keys(SPEECH_FORMATS).join(", ")}.`,
      "invalid_request_error",
    );
    return;
  }
  const audio = standInSpeech(input, format as string);
  // Chunked, in four pieces, as OpenAI streams speech while it is made.
  response.writeHead(200, { "content-type": spec.type, "transfer-encoding": "chunked" });
  const piece = Math.ceil(audio.length / 4);
  for (let offset = 0; offset < audio.length; offset += piece) {
    if (response.destroyed) return;
    response.write(audio.subarray(offset, offset + piece));
    await sleep(5);
  }
  response.end();
}

function clientSecrets({ body, response }: RouteContext): void {
  const { expires_after: expiresAfter, session } = body as {
    expires_after?: { anchor?: unknown; seconds?: unknown };
    session?: Record<string, unknown>;
  };
  const seconds = expiresAfter?.seconds ?? 600;
  if (typeof seconds !== "number" || !Number.isInteger(seconds) || seconds < 10 || seconds > 7200) {
    openAiError(response, 400, "'expires_after.seconds' must be an integer from 10 to 7200.", "invalid_request_error");
    return;
  }
  if (expiresAfter?.anchor !== undefined && expiresAfter.anchor !== "created_at") {
    openAiError(response, 400, "'expires_after.anchor' must be 'created_at'.", "invalid_request_error");
    return;
  }
  if (session?.type !== "realtime" || typeof session.model !== "string") {
    openAiError(response, 400, "'session' must be a realtime session with a model.", "invalid_request_error");
    return;
  }
  const expiresAt = Math.floor(Date.now() / 1000) + seconds;
  sendJson(response, 200, {
    value: `ek_${randomUUID().replace(/-/g, "")}`,
    expires_at: expiresAt,
    session: {
      ...session,
      id: `sess_${randomUUID().replace(/-/g, "").slice(0, 20)}`,
      object: "realtime.session",
      expires_at: 0,
    },
  });
}
