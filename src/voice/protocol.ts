// OpenAI Realtime (GA) wire protocol: client events parsed with zod, server events built fully formed, so
// a client written for OpenAI Realtime works here by changing its URL.
import { z } from "zod";
import { findUnsafeJson } from "../input/unsafe.ts";
import {
  base64Schema,
  clientItemSchema,
  type Item,
  newId,
  type RealtimeResponse,
  type ResponseUsage,
  responseParamsSchema,
  type Session,
  sessionPatchSchema,
} from "./protocol-objects.ts";

export * from "./protocol-objects.ts";

const clientEvent = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.object({ event_id: z.string().max(512).optional(), type: z.literal(type), ...shape });

const clientEventSchemas = [
  clientEvent("session.update", { session: sessionPatchSchema }),
  clientEvent("input_audio_buffer.append", { audio: base64Schema }),
  clientEvent("input_audio_buffer.commit", {}),
  clientEvent("input_audio_buffer.clear", {}),
  clientEvent("conversation.item.create", {
    previous_item_id: z.string().nullable().optional(),
    item: clientItemSchema,
  }),
  clientEvent("conversation.item.truncate", {
    item_id: z.string(),
    content_index: z.int().min(0),
    audio_end_ms: z.int().min(0),
  }),
  clientEvent("conversation.item.delete", { item_id: z.string() }),
  clientEvent("conversation.item.retrieve", { item_id: z.string() }),
  clientEvent("response.create", { response: responseParamsSchema.optional() }),
  clientEvent("response.cancel", { response_id: z.string().optional() }),
] as const;
const clientEventSchema = z.discriminatedUnion("type", clientEventSchemas);
export type ClientEvent = z.output<typeof clientEventSchema>;
export const CLIENT_EVENT_TYPES: readonly string[] = clientEventSchemas.map((s) => s.shape.type.value);

// The `part` of response.content_part.*: the schema (and the SDK) still name these "text" and "audio".
type ContentPart = { type: "text"; text: string } | { type: "audio"; transcript: string; audio?: string };

type TranscriptionUsage =
  | {
      type: "tokens";
      input_tokens: number;
      output_tokens: number;
      total_tokens: number;
      input_token_details?: { text_tokens: number; audio_tokens: number };
    }
  | { type: "duration"; seconds: number };

interface RateLimit {
  name: "requests" | "tokens";
  limit: number;
  remaining: number;
  reset_seconds: number;
}

interface ErrorBody {
  type: string;
  code: string | null;
  message: string;
  param: string | null;
  event_id: string | null;
}

interface OutputRef {
  response_id: string;
  item_id: string;
  output_index: number;
}
interface ContentRef extends OutputRef {
  content_index: number;
}
interface ItemAt {
  item: Item;
  previous_item_id: string | null;
}
interface OutputItem {
  response_id: string;
  output_index: number;
  item: Item;
}

// The facts each server event carries besides `type` and `event_id`.
interface ServerEventFacts {
  error: { error: ErrorBody };
  "session.created": { session: Session };
  "session.updated": { session: Session };
  "input_audio_buffer.speech_started": { item_id: string; audio_start_ms: number };
  "input_audio_buffer.speech_stopped": { item_id: string; audio_end_ms: number };
  "input_audio_buffer.committed": { item_id: string; previous_item_id: string | null };
  "input_audio_buffer.cleared": Record<never, never>;
  "conversation.item.added": ItemAt;
  "conversation.item.done": ItemAt;
  "conversation.item.retrieved": { item: Item };
  "conversation.item.deleted": { item_id: string };
  "conversation.item.truncated": { item_id: string; content_index: number; audio_end_ms: number };
  "conversation.item.input_audio_transcription.delta": { item_id: string; content_index: number; delta: string };
  "conversation.item.input_audio_transcription.completed": {
    item_id: string;
    content_index: number;
    transcript: string;
    usage: TranscriptionUsage;
  };
  "conversation.item.input_audio_transcription.failed": {
    item_id: string;
    content_index: number;
    error: { type: string; code: string; message: string };
  };
  "response.created": { response: RealtimeResponse };
  "response.done": { response: RealtimeResponse & { usage: ResponseUsage } };
  "response.output_item.added": OutputItem;
  "response.output_item.done": OutputItem;
  "response.content_part.added": ContentRef & { part: ContentPart };
  "response.content_part.done": ContentRef & { part: ContentPart };
  "response.output_text.delta": ContentRef & { delta: string };
  "response.output_text.done": ContentRef & { text: string };
  "response.output_audio.delta": ContentRef & { delta: string };
  "response.output_audio.done": ContentRef;
  "response.output_audio_transcript.delta": ContentRef & { delta: string };
  "response.output_audio_transcript.done": ContentRef & { transcript: string };
  "response.function_call_arguments.delta": OutputRef & { call_id: string; delta: string };
  "response.function_call_arguments.done": OutputRef & { call_id: string; name: string; arguments: string };
  "rate_limits.updated": { rate_limits: RateLimit[] };
}
export type ServerEventType = keyof ServerEventFacts;
export type ServerEvent<T extends ServerEventType = ServerEventType> = T extends ServerEventType
  ? { type: T; event_id: string } & ServerEventFacts[T]
  : never;

export const serverEvent = <T extends ServerEventType>(type: T, facts: ServerEventFacts[T]): ServerEvent<T> =>
  ({ type, event_id: newId("event"), ...facts }) as ServerEvent<T>;

export const errorEvent = (
  error: Pick<ErrorBody, "code" | "message"> & Partial<Pick<ErrorBody, "type" | "param" | "event_id">>,
): ServerEvent<"error"> =>
  serverEvent("error", { error: { type: "invalid_request_error", param: null, event_id: null, ...error } });

type ParsedClientEvent = { ok: true; event: ClientEvent } | { ok: false; error: ServerEvent<"error"> };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

// OpenAI names params as a dotted path with array indexes: "item.content[0].text".
const paramOf = (path: readonly PropertyKey[]) =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");

// findUnsafeJson names fields "event.item.content.0.text"; OpenAI's param for that is "item.content[0].text".
const paramOfField = (field: string) => {
  const path = field.split(".").slice(1);
  return paramOf(path.map((p) => (/^\d+$/.test(p) ? Number(p) : p)));
};

const valueAt = (root: unknown, path: readonly PropertyKey[]) =>
  path.reduce<unknown>(
    (node, key) => (isRecord(node) || Array.isArray(node) ? (node as Record<PropertyKey, unknown>)[key] : undefined),
    root,
  );

// One client frame -> a typed event, or the error event to send back (echoing the client's event_id). Never throws.
export function parseClientEvent(text: string): ParsedClientEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: errorEvent({ code: "invalid_json", message: "The event is not valid JSON." }) };
  }
  const eventId = isRecord(raw) && typeof raw.event_id === "string" ? raw.event_id : null;
  const fail = (code: string, message: string, param: string | null): ParsedClientEvent => ({
    ok: false,
    error: errorEvent({ code, message, param, event_id: eventId }),
  });
  // Nothing that cannot be stored (a NUL) or walked safely (deep nesting) gets past the door, in either mode.
  const unsafe = findUnsafeJson(raw, "event");
  if (unsafe) {
    const param = paramOfField(unsafe.field) || null;
    return fail("invalid_value", `Invalid value${param ? ` for '${param}'` : ""}: ${unsafe.message}.`, param);
  }
  if (!isRecord(raw) || typeof raw.type !== "string")
    return fail("invalid_event", "The 'type' field is missing.", null);
  if (!CLIENT_EVENT_TYPES.includes(raw.type)) {
    const supported = CLIENT_EVENT_TYPES.map((t) => `'${t}'`).join(", ");
    return fail("unknown_event", `Invalid value: '${raw.type}'. Supported values are: ${supported}.`, "type");
  }
  const result = clientEventSchema.safeParse(raw);
  if (result.success) return { ok: true, event: result.data };
  const issue = result.error.issues[0]!;
  const param = paramOf(issue.path);
  if (valueAt(raw, issue.path) === undefined) {
    return fail("missing_required_parameter", `Missing required parameter: '${param}'.`, param);
  }
  return issue.code === "invalid_type"
    ? fail("invalid_type", `Invalid type for '${param}': ${issue.message}.`, param)
    : fail("invalid_value", `Invalid value for '${param}': ${issue.message}.`, param);
}
