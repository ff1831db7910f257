import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { connectedFrame, errorFrame, historyFrame, pongFrame, turnFrame } from "../src/conversations/chat-frames.ts";
import { thread } from "../src/conversations/store.ts";
import { releaseAbandonedQuestion, sendMessage } from "../src/conversations/turns.ts";
import { enforceDailyCap } from "../src/costs/daily-cap.ts";
import { createDb } from "../src/db/client.ts";
import { apiErrorOf } from "../src/db/unavailable.ts";
import { type Env, requireConfig } from "../src/env.ts";
import type { FieldError } from "../src/errors.ts";
import { findUnsafeJson } from "../src/input/unsafe.ts";
import { runInWorkContext } from "../src/observability/context.ts";
import { describeError } from "../src/observability/errors.ts";
import { log } from "../src/observability/log.ts";
import { newSpanId, newTraceId } from "../src/observability/trace.ts";
import {
  CLOSE_CREDENTIAL_ENDED,
  credentialOf,
  SOCKET_RECHECK_MS,
  type SocketCredential,
  socketRefusal,
} from "../src/sockets/credential.ts";
import { mintTicket, redeemTicket, ticketRefused } from "../src/sockets/tickets.ts";

/** The subprotocol a chat client speaks; echoed when offered, as browsers require. */
export const CHAT_PROTOCOL = "voiceassist.chat.v1";
// Headers only the Worker sets (a Durable Object is reachable only through it).
export const USER_HEADER = "x-voiceassist-user";
export const CONVERSATION_HEADER = "x-voiceassist-conversation";

const HISTORY_MESSAGES = 20;
const MAX_FRAME_BYTES = 64 * 1024;

const ClientMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ping") }),
  z.object({
    type: z.literal("message"),
    content: z.string().trim().min(1, "must not be empty").max(8_000),
    client_message_id: z.string().trim().min(1).max(128),
  }),
]);

type ClientFrame = z.output<typeof ClientMessage>;
type Refusal = { code: string; message: string; errors?: FieldError[] };

/**
 * A turn in flight, stored as `turn:<client_message_id>` from before its question is placed until it ends. One
 * left by another instance of the room was cut off by an eviction, deploy or crash (see releaseAbandonedTurns).
 */
interface TurnRecord {
  instance: string;
  conversationId: string;
  clientMessageId: string;
}

const TURN_PREFIX = "turn:";

interface Attachment {
  userId: string;
  conversationId: string;
  /** What the socket was admitted with, checked again every SOCKET_RECHECK_MS. */
  credential?: SocketCredential;
}

/**
 * One object per conversation: every socket on it (two tabs, two devices) sees the same stream.
 * Sockets hibernate between turns; a turn runs to its end while anyone is connected.
 */
export class ChatRoom extends DurableObject<Env> {
  private turns: Promise<void> = Promise.resolve();
  private running: AbortController | undefined;
  /** This instance of the room: a turn record naming another one is a turn an eviction cut off. */
  private readonly instance = crypto.randomUUID();
  private released: Promise<void> | undefined;

  /** A single-use ticket for a browser that cannot send headers; redeemed by the next connect. */
  async mintTicket(
    userId: string,
    conversationId: string,
    credential?: SocketCredential,
  ): Promise<{ ticket: string; expiresAt: number }> {
    return mintTicket<Attachment>(this.ctx.storage, { userId, conversationId, credential });
  }

  /** Resets the object as an eviction with its sockets closed does (POST /api/admin/chaos/evict, for chaos experiments). */
  evict(): void {
    this.ctx.abort("evicted");
  }

  override async fetch(request: Request): Promise<Response> {
    const who = await this.caller(request);
    if (!who) return ticketRefused(request);
    // A client reconnecting after an eviction may resend the question that was being answered, here or over REST.
    await this.releaseAbandonedTurns();
    // History first: if it cannot be read the handshake fails whole, leaving no half-open socket behind.
    const history = await thread(createDb(requireConfig(this.env)), who.conversationId, HISTORY_MESSAGES);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment(who satisfies Attachment);
    await this.recheckLater();
    send(server, connectedFrame(who.conversationId, who.userId));
    send(server, historyFrame(history));
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    const headers = offered.includes(CHAT_PROTOCOL) ? { "sec-websocket-protocol": CHAT_PROTOCOL } : undefined;
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    const who = ws.deserializeAttachment() as Attachment;
    // Each frame is a request of its own: its id is in every error frame and log line it causes.
    const context = {
      requestId: crypto.randomUUID(),
      trace: { traceId: newTraceId(), spanId: newSpanId(), sampled: true },
      userId: who.userId,
    };
    await runInWorkContext(context, () => this.onFrame(ws, who, data));
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    ws.close(code === 1005 ? 1000 : code, "closing");
    // Nobody left to read the answer: stop paying for it.
    if (this.ctx.getWebSockets().every((socket) => socket === ws)) this.running?.abort();
  }

  /** Every SOCKET_RECHECK_MS while sockets are open: one whose credential ended is told why, then closed. */
  override async alarm(): Promise<void> {
    const config = requireConfig(this.env);
    // After an eviction that closed every socket this is the room's last run until someone connects again.
    await this.releaseAbandonedTurns();
    for (const ws of this.ctx.getWebSockets()) {
      const who = ws.deserializeAttachment() as Attachment;
      const refusal = await socketRefusal(config, who.userId, who.credential);
      if (!refusal) continue;
      log("info", "chat socket closed: its credential no longer admits the user", { user_id: who.userId });
      send(ws, errorFrame("UNAUTHORIZED", refusal));
      ws.close(CLOSE_CREDENTIAL_ENDED, "credential ended");
    }
    const open = this.ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN);
    // Nobody left to read the answer: stop paying for it.
    if (open.length === 0) this.running?.abort();
    else await this.ctx.storage.setAlarm(Date.now() + SOCKET_RECHECK_MS);
  }

  private async recheckLater(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + SOCKET_RECHECK_MS);
  }

  private async caller(request: Request): Promise<Attachment | undefined> {
    const user = request.headers.get(USER_HEADER);
    const conversation = request.headers.get(CONVERSATION_HEADER);
    if (user && conversation) return { userId: user, conversationId: conversation, credential: credentialOf(request) };
    return redeemTicket<Attachment>(this.ctx.storage, request);
  }

  private async onFrame(ws: WebSocket, who: Attachment, data: string | ArrayBuffer): Promise<void> {
    const frame = parseFrame(data);
    if ("code" in frame) {
      // The code only: field names and messages can echo what the client sent.
      log("warn", "chat frame refused", { code: frame.code });
      return send(ws, errorFrame(frame.code, frame.message, frame.errors));
    }
    if (frame.type === "ping") return send(ws, pongFrame());
    const { content, client_message_id } = frame;
    // One turn at a time per conversation, in arrival order, as in the REST route.
    this.turns = this.turns.then(() => this.runTurn(who, content, client_message_id));
    await this.turns;
  }

  /** Runs one turn and broadcasts it; never throws, so the turns after it still run. */
  private async runTurn(who: Attachment, content: string, clientMessageId: string): Promise<void> {
    this.running = new AbortController();
    const record = `${TURN_PREFIX}${clientMessageId}`;
    try {
      const config = requireConfig(this.env);
      // Each turn spends: the daily cap is checked per message, not only when the socket opened.
      await enforceDailyCap(config, this.env, who.userId, "answer");
      await this.releaseAbandonedTurns();
      await this.ctx.storage.put<TurnRecord>(record, {
        instance: this.instance,
        conversationId: who.conversationId,
        clientMessageId,
      });
      const events = sendMessage(
        config,
        this.env,
        { userId: who.userId, conversationId: who.conversationId, channel: "websocket", signal: this.running.signal },
        { content, clientMessageId },
        { ctx: this.ctx },
      );
      for await (const event of events) {
        if (event.type === "error") log("warn", "chat turn failed", { code: event.code });
        const frame = turnFrame(event);
        if (frame) this.broadcast(frame);
      }
    } catch (error) {
      const failure = apiErrorOf(error);
      log(failure.code === "INTERNAL" ? "error" : "warn", "chat turn failed", {
        code: failure.code,
        ...(hasCause(failure.code) ? { error: describeError(error) } : {}),
      });
      this.broadcast(errorFrame(failure.code, failure.message));
    } finally {
      this.running = undefined;
      await this.ctx.storage.delete(record).catch(() => undefined);
    }
  }

  /**
   * Releases the questions of turns another instance of this room was answering when it was evicted (or
   * crashed, or a deploy replaced it). Such a question stays `pending`, claimed by an answer that will never
   * end, so a resend of its client_message_id would wait for that claim to go stale (CHAT_TIMEOUT_MS + 30 s,
   * src/conversations/turns.ts), holding every turn after it. Marked failed, the resend answers it at once.
   * Runs once per instance, before its first connect, turn or alarm; a failure is retried at the next one.
   */
  private releaseAbandonedTurns(): Promise<void> {
    this.released ??= this.releaseAbandoned().catch((error: unknown) => {
      this.released = undefined;
      log("warn", "chat room: an abandoned turn was not released; a resend waits until its claim is stale", {
        error: describeError(error),
      });
    });
    return this.released;
  }

  private async releaseAbandoned(): Promise<void> {
    const records = await this.ctx.storage.list<TurnRecord>({ prefix: TURN_PREFIX });
    const abandoned = [...records].filter(([, turn]) => turn.instance !== this.instance);
    if (abandoned.length === 0) return;
    const db = createDb(requireConfig(this.env));
    for (const [key, turn] of abandoned) {
      await releaseAbandonedQuestion(db, turn.conversationId, turn.clientMessageId);
      await this.ctx.storage.delete(key);
    }
    log("info", "chat room: released the questions of turns an eviction cut off", { turns: abandoned.length });
  }

  private broadcast(frame: object): void {
    for (const socket of this.ctx.getWebSockets()) send(socket, frame);
  }
}

/** A client frame, or why it is refused: checked for what must never be stored before its schema. */
function parseFrame(data: string | ArrayBuffer): ClientFrame | Refusal {
  if (typeof data !== "string") return { code: "BAD_REQUEST", message: "Send JSON text frames." };
  if (data.length > MAX_FRAME_BYTES) {
    return { code: "PAYLOAD_TOO_LARGE", message: `Frames are limited to ${MAX_FRAME_BYTES} bytes.` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return { code: "MALFORMED_JSON", message: "The frame is not JSON." };
  }
  const unsafe = findUnsafeJson(parsed, "frame");
  if (unsafe) return invalidField(unsafe.field.replace(/^frame\./, ""), unsafe.message);
  const message = ClientMessage.safeParse(parsed);
  if (message.success) return message.data;
  const issue = message.error.issues[0];
  return invalidField(issue?.path.length ? issue.path.join(".") : "frame", issue?.message ?? "invalid");
}

// A bug or a failing dependency is logged with its cause (described without the data it carried).
const hasCause = (code: string) => code === "INTERNAL" || code.startsWith("UPSTREAM_");

const invalidField = (field: string, message: string): Refusal => ({
  code: "VALIDATION_FAILED",
  message: `${field === "frame" ? "" : `${field} `}${message} (send {type: "message", content, client_message_id} or {type: "ping"}).`,
  errors: [{ field, message }],
});

function send(ws: WebSocket, frame: object): void {
  try {
    ws.send(JSON.stringify(frame));
  } catch {
    // The socket closed meanwhile: the others still get the frame.
  }
}
