// OpenAI Realtime (GA) object model: the session, conversation items and responses, with the zod schemas
// for the parts a client may send. Shapes follow the published schemas (test/fixtures/openai-realtime).
import { z } from "zod";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// OpenAI-style ids: a prefix and 21 base-62 characters (the modulo bias does not matter for identifiers).
export const newId = (prefix: "event" | "item" | "resp" | "sess" | "call" | "conv"): string =>
  `${prefix}_${Array.from(crypto.getRandomValues(new Uint8Array(21)), (b) => ALPHABET[b % 62]).join("")}`;

const audioFormatSchema = z.discriminatedUnion("type", [
  // GA PCM is 24 kHz only; a format without a rate means 24000.
  z.object({ type: z.literal("audio/pcm"), rate: z.literal(24000).default(24000) }),
  z.object({ type: z.literal("audio/pcmu") }),
  z.object({ type: z.literal("audio/pcma") }),
]);
export type AudioFormat = z.output<typeof audioFormatSchema>;

// GA answers in one modality: "audio" (with a transcript) or "text", never both.
const modalitiesSchema = z.array(z.enum(["text", "audio"])).length(1);
type Modality = z.output<typeof modalitiesSchema>[number];

const functionToolSchema = z.object({
  type: z.literal("function"),
  name: z.string().min(1),
  description: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
type FunctionTool = z.output<typeof functionToolSchema>;

const toolChoiceSchema = z.union([
  z.enum(["auto", "none", "required"]),
  z.object({ type: z.literal("function"), name: z.string().min(1) }),
]);
type ToolChoice = z.output<typeof toolChoiceSchema>;

const maxOutputTokensSchema = z.union([z.int().min(1).max(4096), z.literal("inf")]);

const serverVadSchema = z.object({
  type: z.literal("server_vad"),
  threshold: z.number().min(0).max(1).optional(),
  prefix_padding_ms: z.int().min(0).optional(),
  silence_duration_ms: z.int().min(0).optional(),
  create_response: z.boolean().optional(),
  interrupt_response: z.boolean().optional(),
  idle_timeout_ms: z.int().min(5000).max(30000).nullable().optional(),
});
type ServerVad = Required<z.output<typeof serverVadSchema>>;

const transcriptionSchema = z.object({
  model: z.string().min(1).optional(),
  language: z.string().optional(),
  prompt: z.string().optional(),
});
const noiseReductionSchema = z.object({ type: z.enum(["near_field", "far_field"]) });

// The `session` of session.update: every field optional except `type`; null switches a feature off. Fields
// this server does not implement (tracing, include, prompt, truncation, reasoning) are stripped, not refused.
export const sessionPatchSchema = z.object({
  type: z.literal("realtime"),
  model: z.string().min(1).optional(),
  instructions: z.string().optional(),
  output_modalities: modalitiesSchema.optional(),
  tools: z.array(functionToolSchema).optional(),
  tool_choice: toolChoiceSchema.optional(),
  max_output_tokens: maxOutputTokensSchema.optional(),
  audio: z
    .object({
      input: z
        .object({
          format: audioFormatSchema.optional(),
          transcription: transcriptionSchema.nullable().optional(),
          noise_reduction: noiseReductionSchema.nullable().optional(),
          turn_detection: serverVadSchema.nullable().optional(),
        })
        .optional(),
      output: z
        .object({
          format: audioFormatSchema.optional(),
          voice: z.string().min(1).optional(),
          speed: z.number().min(0.25).max(1.5).optional(),
        })
        .optional(),
    })
    .optional(),
});
export type SessionPatch = z.output<typeof sessionPatchSchema>;

export interface Session {
  type: "realtime";
  object: "realtime.session";
  id: string;
  model: string;
  expires_at: number;
  output_modalities: Modality[];
  instructions: string;
  tools: FunctionTool[];
  tool_choice: ToolChoice;
  max_output_tokens: number | "inf";
  audio: {
    // Features that are off are absent: the GA schema allows no null for transcription or noise_reduction.
    input: {
      format: AudioFormat;
      transcription?: z.output<typeof transcriptionSchema>;
      noise_reduction?: z.output<typeof noiseReductionSchema>;
      turn_detection: ServerVad | null;
    };
    output: { format: AudioFormat; voice: string; speed: number };
  };
}

export const DEFAULT_VAD: ServerVad = {
  type: "server_vad",
  threshold: 0.5,
  prefix_padding_ms: 300,
  silence_duration_ms: 200,
  create_response: true,
  interrupt_response: true,
  idle_timeout_ms: null,
};

const PCM_24K: AudioFormat = { type: "audio/pcm", rate: 24000 };

// A session with OpenAI's defaults; GA sessions last at most an hour.
export const newSession = (model: string, ttlSeconds = 3600): Session => ({
  type: "realtime",
  object: "realtime.session",
  id: newId("sess"),
  model,
  expires_at: Math.floor(Date.now() / 1000) + ttlSeconds,
  output_modalities: ["audio"],
  instructions: "",
  tools: [],
  tool_choice: "auto",
  max_output_tokens: "inf",
  audio: {
    input: { format: PCM_24K, turn_detection: DEFAULT_VAD },
    output: { format: PCM_24K, voice: "alloy", speed: 1 },
  },
});

// Applies a validated session.update: given fields replace, turn_detection merges into the current settings.
export function mergeSession(current: Session, patch: SessionPatch): Session {
  const { type: _type, audio, ...top } = patch;
  const { transcription, noise_reduction, turn_detection, ...inputRest } = audio?.input ?? {};
  const input = { ...current.audio.input, ...inputRest };
  if (transcription === null) delete input.transcription;
  else if (transcription) input.transcription = transcription;
  if (noise_reduction === null) delete input.noise_reduction;
  else if (noise_reduction) input.noise_reduction = noise_reduction;
  if (turn_detection !== undefined) {
    input.turn_detection = turn_detection && {
      ...DEFAULT_VAD,
      ...current.audio.input.turn_detection,
      ...turn_detection,
    };
  }
  return { ...current, ...top, audio: { input, output: { ...current.audio.output, ...audio?.output } } };
}

// Base64 as atob accepts it, padding optional (OpenAI's own append example is unpadded). A plain character
// class rather than zod's grouped regex, which overflows the regex stack on multi-megabyte audio.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
export const base64Schema = z
  .string()
  .refine(
    (s) => BASE64_CHARS.test(s) && (s.endsWith("=") ? s.length % 4 === 0 : s.length % 4 !== 1),
    "Invalid base64-encoded string",
  );

const inputText = z.object({ type: z.literal("input_text"), text: z.string() });
const inputAudio = z.object({
  type: z.literal("input_audio"),
  audio: base64Schema.optional(),
  transcript: z.string().optional(),
});
const outputText = z.object({ type: z.literal("output_text"), text: z.string() });
const outputAudio = z.object({
  type: z.literal("output_audio"),
  audio: base64Schema.optional(),
  transcript: z.string().optional(),
});
const itemFields = { id: z.string().min(1).max(64).optional() };

// conversation.item.create's item (and response.create's input): messages, function calls and their outputs.
export const clientItemSchema = z.discriminatedUnion("type", [
  z.discriminatedUnion("role", [
    z.object({
      ...itemFields,
      type: z.literal("message"),
      role: z.literal("user"),
      content: z.array(z.discriminatedUnion("type", [inputText, inputAudio])),
    }),
    z.object({
      ...itemFields,
      type: z.literal("message"),
      role: z.literal("assistant"),
      content: z.array(z.discriminatedUnion("type", [outputText, outputAudio])),
    }),
    z.object({ ...itemFields, type: z.literal("message"), role: z.literal("system"), content: z.array(inputText) }),
  ]),
  z.object({
    ...itemFields,
    type: z.literal("function_call"),
    call_id: z.string().min(1).optional(),
    name: z.string().min(1),
    arguments: z.string(),
  }),
  z.object({ ...itemFields, type: z.literal("function_call_output"), call_id: z.string().min(1), output: z.string() }),
]);
export type ClientItem = z.output<typeof clientItemSchema>;

type ItemStatus = "completed" | "incomplete" | "in_progress";
type Stored<T> = T extends unknown
  ? Omit<T, "id"> & { id: string; object: "realtime.item"; status: ItemStatus }
  : never;
export type Item = Stored<ClientItem>;
export type MessageItem = Extract<Item, { type: "message" }>;
export type Role = MessageItem["role"];

// An item as the conversation holds it: with an id, the object tag and a status.
export const storeItem = <T extends ClientItem>(item: T, status: ItemStatus = "completed"): Stored<T> =>
  ({ ...item, id: item.id ?? newId("item"), object: "realtime.item", status }) as unknown as Stored<T>;

export const messageItem = <R extends Role>(
  role: R,
  content: Extract<MessageItem, { role: R }>["content"],
  status: ItemStatus = "completed",
) => storeItem({ type: "message", role, content } as Extract<ClientItem, { role: R }>, status);

export const functionCallItem = (
  name: string,
  args: string,
  status: ItemStatus = "completed",
  callId = newId("call"),
) => storeItem({ type: "function_call" as const, call_id: callId, name, arguments: args }, status);

export const functionCallOutputItem = (callId: string, output: string) =>
  storeItem({ type: "function_call_output" as const, call_id: callId, output });

// response.create's `response`: per-response overrides of the session.
export const responseParamsSchema = z.object({
  output_modalities: modalitiesSchema.optional(),
  instructions: z.string().optional(),
  tools: z.array(functionToolSchema).optional(),
  tool_choice: toolChoiceSchema.optional(),
  max_output_tokens: maxOutputTokensSchema.optional(),
  // "none" answers out of band: the response's items are not added to the conversation.
  conversation: z.enum(["auto", "none"]).optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  input: z
    .array(
      z.discriminatedUnion("type", [clientItemSchema, z.object({ type: z.literal("item_reference"), id: z.string() })]),
    )
    .optional(),
  audio: z
    .object({
      output: z.object({ format: audioFormatSchema.optional(), voice: z.string().min(1).optional() }).optional(),
    })
    .optional(),
});
export type ResponseParams = z.output<typeof responseParamsSchema>;

export interface ResponseUsage {
  total_tokens: number;
  input_tokens: number;
  output_tokens: number;
  input_token_details: {
    cached_tokens: number;
    text_tokens: number;
    audio_tokens: number;
    image_tokens: number;
    cached_tokens_details: { text_tokens: number; audio_tokens: number; image_tokens: number };
  };
  output_token_details: { text_tokens: number; audio_tokens: number };
}

export interface RealtimeResponse {
  object: "realtime.response";
  id: string;
  status: "in_progress" | "completed" | "cancelled" | "failed" | "incomplete";
  status_details?: {
    type: "completed" | "cancelled" | "failed" | "incomplete";
    reason?: "turn_detected" | "client_cancelled" | "max_output_tokens" | "content_filter";
    error?: { type: string; code: string };
  };
  output: Item[];
  conversation_id?: string;
  output_modalities: Modality[];
  max_output_tokens: number | "inf";
  audio: { output: { format: AudioFormat; voice: string } };
  usage?: ResponseUsage;
  metadata: Record<string, string> | null;
}

// A response in progress, settings from the session unless response.create overrode them.
export const newResponse = (
  session: Session,
  params: ResponseParams = {},
  conversationId?: string,
): RealtimeResponse => ({
  object: "realtime.response",
  id: newId("resp"),
  status: "in_progress",
  output: [],
  ...(params.conversation !== "none" && conversationId ? { conversation_id: conversationId } : {}),
  output_modalities: params.output_modalities ?? session.output_modalities,
  max_output_tokens: params.max_output_tokens ?? session.max_output_tokens,
  audio: {
    output: {
      format: params.audio?.output?.format ?? session.audio.output.format,
      voice: params.audio?.output?.voice ?? session.audio.output.voice,
    },
  },
  metadata: params.metadata ?? null,
});

type TokenSplit = { text: number; audio: number };

// Usage in the GA shape; nothing here is cached or an image, so those counts are zero.
export const responseUsage = (input: TokenSplit, output: TokenSplit): ResponseUsage => ({
  total_tokens: input.text + input.audio + output.text + output.audio,
  input_tokens: input.text + input.audio,
  output_tokens: output.text + output.audio,
  input_token_details: {
    cached_tokens: 0,
    text_tokens: input.text,
    audio_tokens: input.audio,
    image_tokens: 0,
    cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 },
  },
  output_token_details: { text_tokens: output.text, audio_tokens: output.audio },
});
