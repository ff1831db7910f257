import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../app-env.ts";
import { feedbackFor } from "../../conversations/feedback.ts";
import { listMessages, messageVersions, ownConversation } from "../../conversations/store.ts";
import { editMessage, regenerate, sendMessage, type TurnContext, type TurnEvent } from "../../conversations/turns.ts";
import { messageJson } from "../../conversations/wire.ts";
import { enforceDailyCap } from "../../costs/daily-cap.ts";
import { createDb } from "../../db/client.ts";
import { ApiError } from "../../errors.ts";
import { principalOf, requireUser } from "../../middleware/auth.ts";
import { AnswerSchema, answerFailure, answerJson, sseResponse, streamAnswer, wantsStream } from "../answer-wire.ts";
import { createRouter, jsonBody, jsonResponse, PageQuery, pageOf, problem, signedIn } from "../router.ts";
import { SearchFiltersSchema, toSearchFilters } from "../search.ts";
import { feedbackJson, IdParam, Message, MessageParam, ThreadMessage } from "./schemas.ts";

// A conversation's messages and turns: read the thread, ask, edit a question, regenerate, read versions.

const Turn = z
  .object({
    user_message: Message,
    assistant_message: Message,
    answer: AnswerSchema,
    replayed: z.boolean().describe("true when this client_message_id was sent before: nothing new was stored"),
  })
  .openapi("Turn");

const SendRequest = z
  .strictObject({
    content: z.string().trim().min(1, "must not be empty").max(8_000),
    client_message_id: z
      .string()
      .trim()
      .min(1)
      .max(128)
      .describe("the client's idempotency key: a retried send returns the first result"),
    filters: SearchFiltersSchema.optional(),
    stream: z.boolean().optional().describe("SSE when true; default: Accept: text/event-stream"),
  })
  .openapi("SendMessageRequest");

const RegenerateRequest = z
  .strictObject({ filters: SearchFiltersSchema.optional(), stream: z.boolean().optional() })
  .openapi("RegenerateRequest");

const turnContext = (
  c: Context<AppEnv>,
  id: string,
  filters: z.infer<typeof SearchFiltersSchema> | undefined,
  signal: AbortSignal,
): TurnContext => ({
  userId: principalOf(c).userId,
  conversationId: id,
  channel: "conversation",
  filters: toSearchFilters(filters),
  signal,
});

/** A turn as SSE (user_message first, done with both stored messages) or as one JSON body. */
async function respondWithTurn(
  c: Context<AppEnv>,
  cancel: AbortController,
  stream: boolean | undefined,
  events: AsyncGenerator<TurnEvent>,
): Promise<Response> {
  // Before anything is stored or streamed: a capped caller gets the 429 itself.
  await enforceDailyCap(c.var.config, c.env, principalOf(c).userId, "answer");
  // The first event is the stored question: an unknown conversation fails here, as a plain 404.
  const first = await events.next();
  const rest = (async function* () {
    if (!first.done) yield first.value;
    yield* events;
  })();
  if (wantsStream(c, stream)) {
    return streamAnswer(c, cancel, rest, (event) => {
      if (event.type === "user_message") return { event: "user_message", data: messageJson(event.message) };
      if (event.type === "done") {
        return {
          event: "done",
          data: { ...answerJson(event.answer), message: messageJson(event.message), replayed: event.replayed },
        };
      }
      return undefined;
    });
  }
  for await (const event of rest) {
    if (event.type === "error") throw answerFailure(event);
    if (event.type === "done") {
      const body = {
        user_message: messageJson(event.userMessage),
        assistant_message: messageJson(event.message),
        answer: answerJson(event.answer),
        replayed: event.replayed,
      };
      return c.json(body, event.replayed ? 200 : 201);
    }
  }
  throw new ApiError("INTERNAL", "The answer ended without a result. Quote the requestId when reporting it.");
}

const turnResponses = {
  200: {
    ...jsonResponse("This client_message_id was sent before: the first result, nothing stored", Turn),
    content: { ...jsonResponse("", Turn).content, ...sseResponse("").content },
  },
  201: jsonResponse("The question and its answer, stored", Turn),
  401: problem("Not signed in"),
  404: problem("No such conversation or message (or not yours)"),
  409: problem("The same client_message_id is still being answered"),
  422: problem("Empty content, an unknown field, or PHI refused (PHI_MODE=block)"),
  429: problem("Daily spending cap reached: BUDGET_EXCEEDED, Retry-After until midnight UTC"),
  502: problem("The chat model failed (the question is kept: retry with the same client_message_id)"),
  504: problem("The chat model timed out (retry with the same client_message_id)"),
};

export const messageRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}/messages",
      tags: ["conversations"],
      summary: "The visible thread, oldest first (each question before its answer)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam, query: PageQuery },
      responses: {
        200: jsonResponse("A page of messages, each with your rating of it", pageOf(ThreadMessage)),
        404: problem("No such conversation (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { id } = c.req.valid("param");
      const { page, page_size } = c.req.valid("query");
      const userId = principalOf(c).userId;
      await ownConversation(db, userId, id);
      const { rows, total } = await listMessages(db, id, page, page_size);
      const ratings = await feedbackFor(
        db,
        userId,
        rows.filter((row) => row.role === "assistant").map((row) => row.id),
      );
      const items = rows.map((row) => {
        const rating = ratings.get(row.id);
        return { ...messageJson(row), feedback: rating ? feedbackJson(rating) : null };
      });
      return c.json({ items, total, page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/conversations/{id}/messages",
      tags: ["conversations"],
      summary: "Ask in a conversation: stores the question and its grounded answer (idempotent on client_message_id)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam, body: jsonBody(SendRequest) },
      responses: turnResponses,
    }),
    async (c) => {
      const body = c.req.valid("json");
      const cancel = new AbortController();
      const turn = turnContext(c, c.req.valid("param").id, body.filters, cancel.signal);
      const events = sendMessage(
        c.var.config,
        c.env,
        turn,
        { content: body.content, clientMessageId: body.client_message_id },
        { ctx: c.executionCtx },
      );
      return respondWithTurn(c, cancel, body.stream, events);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/api/conversations/{id}/messages/{message_id}",
      tags: ["conversations"],
      summary: "Edit a question: a new version is answered; later turns leave the thread (kept as versions)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: MessageParam, body: jsonBody(SendRequest) },
      responses: turnResponses,
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { id, message_id } = c.req.valid("param");
      const cancel = new AbortController();
      const events = editMessage(
        c.var.config,
        c.env,
        turnContext(c, id, body.filters, cancel.signal),
        { messageId: message_id, content: body.content, clientMessageId: body.client_message_id },
        { ctx: c.executionCtx },
      );
      return respondWithTurn(c, cancel, body.stream, events);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/conversations/{id}/messages/{message_id}/regenerate",
      tags: ["conversations"],
      summary: "Answer a question again (message_id: the question or its answer); the old answer stays as a version",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        params: MessageParam,
        body: { required: false, content: { "application/json": { schema: RegenerateRequest } } },
      },
      responses: turnResponses,
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const { id, message_id } = c.req.valid("param");
      const cancel = new AbortController();
      const events = regenerate(c.var.config, c.env, turnContext(c, id, body.filters, cancel.signal), message_id, {
        ctx: c.executionCtx,
      });
      return respondWithTurn(c, cancel, body.stream, events);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}/messages/{message_id}/versions",
      tags: ["conversations"],
      summary: "Every version of a question or answer, oldest first",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: MessageParam },
      responses: {
        200: jsonResponse("The versions", z.object({ items: z.array(Message) })),
        404: problem("No such conversation or message (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { id, message_id } = c.req.valid("param");
      await ownConversation(db, principalOf(c).userId, id);
      return c.json({ items: (await messageVersions(db, id, message_id)).map(messageJson) }, 200);
    },
  );
