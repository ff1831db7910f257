// The chat WebSocket's server frames (GET /api/realtime/ws, subprotocol voiceassist.chat.v1), parsed and typed.
import type { FieldError } from "./problem.ts";
import type { Citation, Message } from "./types.ts";

export type ChatEvent =
  | { type: "connected"; conversation_id: string; user_id: string }
  | { type: "history"; messages: Message[] }
  | { type: "user_message.created"; message: Message; replayed: boolean }
  | { type: "chunk"; text: string }
  | { type: "message.done"; message: Message; citations: Citation[]; replayed: boolean }
  | { type: "error"; code: string; message: string; requestId?: string; errors?: FieldError[] }
  | { type: "pong" };

/** A frame the client cannot use: not JSON, an unknown type, or a field missing or of the wrong type. */
export class ChatFrameError extends Error {}

type Frame = Record<string, unknown>;

const need = (frame: Frame, field: string, type: "string" | "boolean" | "object") => {
  const value = frame[field];
  const ok = type === "object" ? typeof value === "object" && value !== null : typeof value === type;
  if (!ok) throw new ChatFrameError(`${String(frame.type)} frame: ${field} must be a ${type}`);
};

const isMessage = (value: unknown): value is Message => {
  const m = value as Frame;
  return (
    typeof m === "object" &&
    m !== null &&
    typeof m.id === "string" &&
    typeof m.conversation_id === "string" &&
    (m.role === "user" || m.role === "assistant") &&
    typeof m.content === "string" &&
    Array.isArray(m.citations)
  );
};

const needMessage = (frame: Frame, field: string) => {
  if (!isMessage(frame[field])) throw new ChatFrameError(`${String(frame.type)} frame: ${field} is not a message`);
};

/** One text frame from the server, checked field by field. */
export function parseChatEvent(text: string): ChatEvent {
  let frame: Frame;
  try {
    frame = JSON.parse(text) as Frame;
  } catch {
    throw new ChatFrameError("the frame is not JSON");
  }
  if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
    throw new ChatFrameError("the frame is not a JSON object");
  }
  switch (frame.type) {
    case "connected":
      need(frame, "conversation_id", "string");
      need(frame, "user_id", "string");
      break;
    case "history":
      if (!Array.isArray(frame.messages) || !frame.messages.every(isMessage)) {
        throw new ChatFrameError("history frame: messages must be messages");
      }
      break;
    case "user_message.created":
      needMessage(frame, "message");
      need(frame, "replayed", "boolean");
      break;
    case "chunk":
      need(frame, "text", "string");
      break;
    case "message.done":
      needMessage(frame, "message");
      need(frame, "replayed", "boolean");
      if (!Array.isArray(frame.citations)) throw new ChatFrameError("message.done frame: citations must be a list");
      break;
    case "error":
      need(frame, "code", "string");
      need(frame, "message", "string");
      break;
    case "pong":
      break;
    default:
      throw new ChatFrameError(`unknown frame type ${JSON.stringify(frame.type)}`);
  }
  return frame as unknown as ChatEvent;
}
