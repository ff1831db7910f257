// The chat room's server frames (workers/chat-room.ts), built here so the wire shape has one definition that the
// socket sends and the contract tests (test/contract/) verify against the reference client's parser.
import type { FieldError } from "../errors.ts";
import { currentWorkContext } from "../observability/context.ts";
import type { MessageRow } from "./store.ts";
import type { TurnEvent } from "./turns.ts";
import { messageJson } from "./wire.ts";

export const connectedFrame = (conversationId: string, userId: string) => ({
  type: "connected",
  conversation_id: conversationId,
  user_id: userId,
});

export const historyFrame = (history: MessageRow[]) => ({ type: "history", messages: history.map(messageJson) });

export const pongFrame = () => ({ type: "pong" });

/** The frame a turn event becomes; citations travel with message.done, so they have none of their own. */
export function turnFrame(event: TurnEvent): object | undefined {
  switch (event.type) {
    case "user_message":
      return { type: "user_message.created", message: messageJson(event.message), replayed: event.replayed };
    case "delta":
      return { type: "chunk", text: event.text };
    case "citations":
      return undefined;
    case "done":
      return {
        type: "message.done",
        message: messageJson(event.message),
        citations: event.answer.citations,
        replayed: event.replayed,
      };
    case "error":
      return errorFrame(event.code, event.message);
  }
}

// The requestId is the frame's: the same id is on the log line of the failure.
export const errorFrame = (code: string, message: string, errors?: FieldError[]) => ({
  type: "error",
  code,
  message,
  requestId: currentWorkContext()?.requestId,
  ...(errors ? { errors } : {}),
});
