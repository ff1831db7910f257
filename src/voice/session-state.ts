import type { Env } from "../env.ts";
import type { MetricEvent } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import type { SocketCredential } from "../sockets/credential.ts";
import type { Item, Session } from "./protocol.ts";

/** Who a voice session belongs to, as the Worker admitted them (or as the ticket they redeemed recorded). */
export interface Identity {
  userId: string;
  sessionId: string;
  conversationId: string | null;
  /** What the client was admitted with, checked again every SOCKET_RECHECK_MS. */
  credential?: SocketCredential;
}

/** What must survive hibernation; audio of the turn being spoken is stored beside it, chunk by chunk. */
export interface State extends Identity {
  session: Session;
  items: Item[];
  startedAt: number;
  /** Audio received, ms: time base of VAD events and of the flood check. */
  audioMs: number;
  /** Where the uncommitted buffer starts, ms. */
  bufferStartMs: number;
  bufferChunks: number;
  ended?: boolean;
}

/** What the Durable Object lends the session's parts: its state, socket, storage and bookkeeping. */
export interface SessionIo {
  env: Env;
  ctx: DurableObjectState;
  state(): State;
  send(event: object): void;
  save(): Promise<void>;
  metric(event: MetricEvent): void;
  logFailure(message: string, code: string, error: unknown, fields: Record<string, unknown>): void;
}

/** What a client is told: an internal failure says only where to find it in the log (the error event's id). */
export const clientMessage = (failure: { code: string; message: string }) =>
  failure.code === "INTERNAL"
    ? "An unexpected error occurred. Quote this error event's event_id when reporting it."
    : failure.message;

/** A failure in the log: its code, ids and the error's kind, never what the user said. */
export function logVoiceFailure(
  sessionId: string | undefined,
  message: string,
  code: string,
  error: unknown,
  fields: Record<string, unknown>,
): void {
  log(code === "INTERNAL" ? "error" : "warn", message, {
    code,
    session_id: sessionId,
    ...fields,
    // A bug or a failing dependency is logged with its cause (described without the data it carried).
    ...(error !== undefined && (code === "INTERNAL" || code.startsWith("UPSTREAM_"))
      ? { error: describeError(error) }
      : {}),
  });
}
