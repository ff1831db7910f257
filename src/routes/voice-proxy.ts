import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../db/client.ts";
import { ApiError } from "../errors.ts";
import { principalOf, requireUser } from "../middleware/auth.ts";
import { acceptsBody } from "../middleware/body.ts";
import { SEARCH_TOOL, VOICE_INSTRUCTIONS } from "../voice/grounding.ts";
import {
  audioUpload,
  DEFAULT_TRANSCRIPTION_MODEL,
  MAX_AUDIO_BYTES,
  mintClientSecret,
  requireOpenAiKey,
  SPEECH_CONTENT_TYPES,
  SPEECH_FORMATS,
  SPEECH_VOICES,
  speechVoice,
  synthesize,
  TRANSCRIPTION_MODELS,
  transcribe,
} from "../voice/openai-audio.ts";
import { DEFAULT_VAD } from "../voice/protocol-objects.ts";
import { loadPreferences } from "../voice/sessions.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

// OpenAI's audio endpoints behind the app's auth, limits and error envelope (docs/voice.md): for clients
// that transcribe or speak one clip at a time, or that talk to OpenAI Realtime directly with a client secret.

const UPLOAD_OVERHEAD = 64 * 1024; // multipart boundaries and the other fields
const audioClip = acceptsBody({ media: ["multipart/form-data"], maxBytes: () => MAX_AUDIO_BYTES + UPLOAD_OVERHEAD });
// 4096 characters of text, each at most 6 bytes as a JSON escape, and the other fields.
const textToSpeak = acceptsBody({ media: ["application/json"], maxBytes: () => 32 * 1024 });
const sessionOptions = acceptsBody({ media: ["application/json"], maxBytes: () => 4 * 1024 });

const notReady = problem("No speech provider configured (OPENAI_API_KEY unset)");
const upstream = {
  401: problem("Not signed in"),
  502: problem("OpenAI failed or refused the request"),
  503: notReady,
  504: problem("OpenAI did not answer in time"),
};

/** A secret only has to outlive the client's connect: short, so a leaked one is soon useless. */
const SECRET_SECONDS = 120;
const PCM_24K = { type: "audio/pcm", rate: 24000 } as const;
const primaryLanguage = (tag: string) => tag.split("-")[0]?.toLowerCase() ?? tag;
const LANGUAGE = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/;

const RealtimeSecret = z
  .object({
    value: z.string().describe("The ephemeral key: connect to OpenAI Realtime with it as the bearer token"),
    expires_at: z.number().int().describe("Unix seconds"),
    session: z
      .looseObject({
        type: z.string(),
        model: z.string().optional(),
        instructions: z.string().optional(),
        tools: z.array(z.unknown()).optional(),
      })
      .describe("The session the secret is bound to, as OpenAI reports it"),
  })
  .openapi("RealtimeClientSecret");

const Transcript = z
  .object({
    text: z.string(),
    language: z.string().optional().describe("As given, or as detected when the model reports it"),
    duration: z.number().optional().describe("Seconds of audio, when the model reports it"),
  })
  .openapi("Transcript");

const TranscribeForm = z.object({
  file: z
    .any()
    .refine((value) => value instanceof File, "is required: attach the audio as the file field")
    .openapi({
      type: "string",
      format: "binary",
      description: "Audio up to 25 MB (flac, m4a, mp3, ogg, wav, webm...)",
    }),
  language: z
    .string()
    .trim()
    .regex(LANGUAGE, "must be a language code such as en or en-GB")
    .optional()
    .describe("The spoken language (ISO 639-1 or BCP 47); detected when absent"),
  prompt: z.string().max(2_000).optional().describe("Context or spellings to guide the transcript"),
  model: z.enum(TRANSCRIPTION_MODELS).optional().describe(`Default ${DEFAULT_TRANSCRIPTION_MODEL}`),
});

const SynthesizeBody = z.strictObject({
  text: z
    .string()
    .min(1)
    .max(4_096)
    .refine((text) => text.trim().length > 0, "must not be blank"),
  voice: z.enum(SPEECH_VOICES).optional().describe("Default: your voice preference"),
  speed: z.number().min(0.25).max(4).optional().describe("Default: your voice preference"),
  format: z.enum(SPEECH_FORMATS).default("mp3"),
});

export const voiceProxyRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/voice/realtime-session",
      tags: ["voice"],
      summary: "A short-lived OpenAI client secret for connecting to OpenAI Realtime directly",
      description:
        "The secret is bound to VOICE_REALTIME_MODEL, the grounded instructions, the search_knowledge_base tool (the client runs it, e.g. with POST /api/kb/search) and your voice preferences.",
      security: signedIn,
      middleware: [sessionOptions, requireUser] as const,
      request: {
        body: {
          required: false,
          content: {
            "application/json": {
              schema: z.strictObject({
                expires_in_seconds: z
                  .number()
                  .int()
                  .min(10)
                  .max(600)
                  .optional()
                  .describe(`How long the secret may open sessions; default ${SECRET_SECONDS}`),
              }),
            },
          },
        },
      },
      responses: { 200: jsonResponse("The client secret", RealtimeSecret), 422: problem("Bad field"), ...upstream },
    }),
    async (c) => {
      const config = c.var.config;
      const { expires_in_seconds } = c.req.valid("json");
      // These routes have no local provider: 503 once the input is known to be good, so bad input is still 422.
      requireOpenAiKey(config);
      const preferences = await loadPreferences(createDb(config), principalOf(c).userId);
      const secret = await mintClientSecret(
        config,
        {
          model: config.VOICE_REALTIME_MODEL,
          instructions: VOICE_INSTRUCTIONS(config.RAG_MEDICAL_DISCLAIMER),
          tools: [SEARCH_TOOL],
          tool_choice: "auto",
          output_modalities: ["audio"],
          audio: {
            input: {
              format: PCM_24K,
              transcription: { model: DEFAULT_TRANSCRIPTION_MODEL, language: primaryLanguage(preferences.language) },
              turn_detection: { ...DEFAULT_VAD, threshold: 1 - preferences.vadSensitivity },
            },
            output: { format: PCM_24K, voice: preferences.voice, speed: preferences.speed },
          },
        },
        expires_in_seconds ?? SECRET_SECONDS,
      );
      return c.json({ value: secret.value, expires_at: secret.expires_at, session: secret.session }, 200, {
        "Cache-Control": "no-store",
      });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/voice/transcribe",
      tags: ["voice"],
      summary: "Transcribe an audio clip (multipart: file, language?, prompt?, model?)",
      security: signedIn,
      middleware: [audioClip, requireUser] as const,
      request: { body: { required: true, content: { "multipart/form-data": { schema: TranscribeForm } } } },
      responses: {
        200: jsonResponse("The transcript", Transcript),
        413: problem("The file is over 25 MB"),
        415: problem("Not multipart, or not an audio format OpenAI takes"),
        422: problem("No file, an empty file, or a bad field"),
        ...upstream,
      },
    }),
    async (c) => {
      const form = c.req.valid("form");
      const file = form.file as File;
      if (file.size > MAX_AUDIO_BYTES) {
        throw new ApiError("PAYLOAD_TOO_LARGE", `The file is over the limit of ${MAX_AUDIO_BYTES} bytes (25 MB).`, {
          extensions: { limitBytes: MAX_AUDIO_BYTES },
        });
      }
      if (file.size === 0) {
        throw new ApiError("VALIDATION_FAILED", "The request form is invalid: form.file is empty.", {
          errors: [{ field: "form.file", message: "is empty" }],
        });
      }
      requireOpenAiKey(c.var.config);
      const transcript = await transcribe(c.var.config, {
        file: await audioUpload(file),
        model: form.model ?? DEFAULT_TRANSCRIPTION_MODEL,
        language: form.language && primaryLanguage(form.language),
        prompt: form.prompt,
      });
      return c.json(transcript, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/voice/synthesize",
      tags: ["voice"],
      summary: "Speak a text (up to 4096 characters); the audio streams back as it is made",
      security: signedIn,
      middleware: [textToSpeak, requireUser] as const,
      request: { body: jsonBody(SynthesizeBody) },
      responses: {
        200: {
          description: "The audio, streamed; pcm is raw 24 kHz mono signed 16-bit little-endian",
          content: Object.fromEntries(
            Object.values(SPEECH_CONTENT_TYPES).map((type) => [
              type,
              { schema: z.string().openapi({ format: "binary" }) },
            ]),
          ),
        },
        422: problem("Text empty or over 4096 characters, or an unknown voice, speed or format"),
        ...upstream,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      requireOpenAiKey(c.var.config);
      const preferences =
        body.voice === undefined || body.speed === undefined
          ? await loadPreferences(createDb(c.var.config), principalOf(c).userId)
          : undefined;
      const audio = await synthesize(c.var.config, {
        text: body.text,
        voice: body.voice ?? speechVoice(preferences?.voice),
        speed: body.speed ?? preferences?.speed ?? 1,
        format: body.format,
      });
      return c.body(audio, 200, {
        "Content-Type": SPEECH_CONTENT_TYPES[body.format],
        "Cache-Control": "no-store",
      });
    },
  );
