// The chat room: one conversation's chat socket, served by the ChatRoom Durable Object (workers/chat-room.ts).
// Its paths keep their historical names (/api/realtime/tickets, /api/realtime/ws): clients depend on them.
import { createRoute, z } from "@hono/zod-openapi";
import { CHAT_PROTOCOL, CONVERSATION_HEADER, USER_HEADER } from "../../workers/chat-room.ts";
import { ownConversation } from "../conversations/store.ts";
import { enforceDailyCap } from "../costs/daily-cap.ts";
import { createDb } from "../db/client.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { principalOf, requireUser, signIn } from "../middleware/auth.ts";
import { CREDENTIAL_HEADER, socketCredential, ticketCredential } from "../sockets/credential.ts";
import { REQUEST_ID_HEADER } from "../sockets/tickets.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

// A token rides in the subprotocol list ("bearer.<token>"): browsers cannot set headers on a socket,
// and a long-lived token must never sit in a URL (logs, history).
const BEARER_PROTOCOL = "bearer.";

const chatRoom = (env: Env, conversationId: string) => env.CHAT_ROOM.get(env.CHAT_ROOM.idFromName(conversationId));

export const chatRoomRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/realtime/tickets",
      tags: ["conversations"],
      summary: "A single-use ticket (60 s) to open the chat socket of a conversation without a token",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { body: jsonBody(z.strictObject({ conversation_id: z.uuid() })) },
      responses: {
        201: jsonResponse(
          "The ticket",
          z.object({ ticket: z.string(), expires_at: z.string(), url: z.string().describe("path to connect to") }),
        ),
        404: problem("No such conversation (or not yours)"),
        429: problem("Daily spending cap reached: BUDGET_EXCEEDED, Retry-After until midnight UTC"),
      },
    }),
    async (c) => {
      const { conversation_id } = c.req.valid("json");
      const principal = principalOf(c);
      await ownConversation(createDb(c.var.config), principal.userId, conversation_id);
      // The socket is for asking: a caller at the daily cap gets no ticket (docs/costs.md).
      await enforceDailyCap(c.var.config, c.env, principal.userId, "answer");
      const { ticket, expiresAt } = await chatRoom(c.env, conversation_id).mintTicket(
        principal.userId,
        conversation_id,
        ticketCredential(principal),
      );
      const url = `/api/realtime/ws?conversation_id=${conversation_id}&ticket=${ticket}`;
      return c.json({ ticket, expires_at: new Date(expiresAt).toISOString(), url }, 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/realtime/ws",
      tags: ["conversations"],
      summary: `Chat over a WebSocket (subprotocols "${CHAT_PROTOCOL}", "bearer.<token>"; or ?ticket=)`,
      description:
        "Client frames: message {content, client_message_id}, ping. Server frames: connected, history, user_message.created, chunk, message.done {message, citations}, error {code, message}, pong. One Durable Object per conversation: every socket on it sees the same stream. " +
        "The credential is checked again every 30 s: once it has ended (logout, revoked key, deactivation, expired token), an error frame UNAUTHORIZED, then close 1008.",
      request: {
        query: z.object({
          conversation_id: z.uuid(),
          ticket: z.string().min(1).max(128).optional().describe("from POST /api/realtime/tickets"),
        }),
      },
      responses: {
        101: { description: "Switching protocols" },
        400: problem("Not a WebSocket upgrade"),
        401: problem("No valid token or ticket"),
        404: problem("No such conversation (or not yours)"),
        429: problem("Daily spending cap reached: BUDGET_EXCEEDED, Retry-After until midnight UTC"),
      },
    }),
    async (c) => {
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        throw new ApiError("BAD_REQUEST", "Connect with a WebSocket upgrade (Upgrade: websocket).");
      }
      const { conversation_id, ticket } = c.req.valid("query");
      const headers = new Headers(c.req.raw.headers);
      headers.delete(USER_HEADER);
      headers.delete(CONVERSATION_HEADER);
      headers.delete(CREDENTIAL_HEADER);
      headers.set(REQUEST_ID_HEADER, c.var.requestId);
      if (!ticket) {
        const protocols = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
        const token = protocols.find((p) => p.startsWith(BEARER_PROTOCOL))?.slice(BEARER_PROTOCOL.length);
        const principal = token ? await signIn(c, { bearer: token }) : await signIn(c);
        await ownConversation(createDb(c.var.config), principal.userId, conversation_id);
        await enforceDailyCap(c.var.config, c.env, principal.userId, "answer");
        headers.set(USER_HEADER, principal.userId);
        headers.set(CONVERSATION_HEADER, conversation_id);
        // The room checks this credential again while the socket is open.
        headers.set(CREDENTIAL_HEADER, JSON.stringify(socketCredential(principal)));
      }
      return chatRoom(c.env, conversation_id).fetch(new Request(c.req.raw, { headers }));
    },
  );
