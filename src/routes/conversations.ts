import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { createDb } from "../adapters/db/client.ts";
import type { AppEnv } from "../app-env.ts";
import { exportMarkdown } from "../conversations/export.ts";
import {
  type ConversationRow,
  createConversation,
  deleteConversation,
  listConversations,
  listMessages,
  type MessageRow,
  messageVersions,
  ownConversation,
  thread,
  updateConversation,
} from "../conversations/store.ts";
import { editMessage, regenerate, sendMessage, type TurnContext, type TurnEvent } from "../conversations/turns.ts";
import { ApiError } from "../errors.ts";
import { principalOf, requireUser } from "../middleware/auth.ts";
import { usageTotals } from "../rag/usage.ts";
import {
  AnswerSchema,
  answerFailure,
  answerJson,
  CitationSchema,
  sseResponse,
  streamAnswer,
  wantsStream,
} from "./answer-wire.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";
import { SearchFiltersSchema, toSearchFilters } from "./search.ts";

const IdParam = z.object({ id: z.uuid() });
const USAGE_WINDOW_MS = 30 * 24 * 3600 * 1000;
const MessageParam = z.object({ id: z.uuid(), message_id: z.uuid() });
const Title = z.string().trim().min(1, "must not be empty").max(200);
const Folder = z.string().trim().min(1).max(100);
const Page = {
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(200).default(50),
};

const Conversation = z
  .object({
    id: z.uuid(),
    title: z.string(),
    folder: z.string().nullable(),
    archived: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Conversation");

const Usage = z.object({
  calls: z.number().int(),
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  cost_usd: z.number(),
});

const Message = z
  .object({
    id: z.uuid(),
    conversation_id: z.uuid(),
    turn: z.number().int(),
    role: z.enum(["user", "assistant"]),
    version: z.number().int().describe("edits and regenerations add versions; older ones stay readable"),
    active: z.boolean().describe("whether this version is part of the visible thread"),
    content: z.string(),
    client_message_id: z.string().nullable(),
    reply_to: z.uuid().nullable().describe("for an answer: the question it answers"),
    citations: z.array(CitationSchema),
    invalid_citations: z.number().int(),
    provider: z.string().nullable(),
    model: z.string().nullable(),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }).nullable(),
    cost_usd: z.number().nullable(),
    latency_ms: z.number().int().nullable(),
    first_token_ms: z.number().int().nullable(),
    created_at: z.string(),
  })
  .openapi("Message");

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

const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), page: z.number().int(), page_size: z.number().int() });

const conversationJson = (row: ConversationRow): z.infer<typeof Conversation> => ({
  id: row.id,
  title: row.title,
  folder: row.folder,
  archived: row.archived,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

export const messageJson = (row: MessageRow): z.infer<typeof Message> => ({
  id: row.id,
  conversation_id: row.conversationId,
  turn: row.turn,
  role: row.role,
  version: row.version,
  active: row.active,
  content: row.content,
  client_message_id: row.clientMessageId,
  reply_to: row.replyTo,
  citations: row.citations as z.infer<typeof CitationSchema>[],
  invalid_citations: row.invalidCitations,
  provider: row.provider,
  model: row.model,
  usage:
    row.role === "assistant"
      ? { prompt_tokens: row.promptTokens ?? 0, completion_tokens: row.completionTokens ?? 0 }
      : null,
  cost_usd: row.costUsd,
  latency_ms: row.latencyMs,
  first_token_ms: row.firstTokenMs,
  created_at: row.createdAt.toISOString(),
});

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
  502: problem("The chat model failed (the question is kept: retry with the same client_message_id)"),
  504: problem("The chat model timed out (retry with the same client_message_id)"),
};

export const conversationRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/conversations",
      tags: ["conversations"],
      summary: "Start a conversation",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        body: jsonBody(z.strictObject({ title: Title.optional(), folder: Folder.nullable().optional() })),
      },
      responses: { 201: jsonResponse("The new conversation", Conversation), 401: problem("Not signed in") },
    }),
    async (c) => {
      const row = await createConversation(createDb(c.var.config), principalOf(c).userId, c.req.valid("json"));
      return c.json(conversationJson(row), 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations",
      tags: ["conversations"],
      summary: "List your conversations, newest activity first",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        query: z.object({
          q: z.string().trim().min(1).max(200).optional().describe("search in titles"),
          archived: z
            .enum(["true", "false"])
            .optional()
            .transform((v) => (v === undefined ? undefined : v === "true")),
          folder: Folder.optional(),
          ...Page,
        }),
      },
      responses: {
        200: jsonResponse("A page of conversations", pageOf(Conversation)),
        401: problem("Not signed in"),
      },
    }),
    async (c) => {
      const { q, archived, folder, page, page_size } = c.req.valid("query");
      const { rows, total } = await listConversations(createDb(c.var.config), principalOf(c).userId, {
        q,
        archived,
        folder,
        page,
        pageSize: page_size,
      });
      return c.json({ items: rows.map(conversationJson), total, page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}",
      tags: ["conversations"],
      summary: "A conversation, with its model usage and cost",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam },
      responses: {
        200: jsonResponse("The conversation", Conversation.extend({ usage: Usage })),
        404: problem("No such conversation (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { userId } = principalOf(c);
      const { id } = c.req.valid("param");
      const row = await ownConversation(db, userId, id);
      return c.json({ ...conversationJson(row), usage: await usageTotals(db, { userId, conversationId: id }) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/api/conversations/{id}",
      tags: ["conversations"],
      summary: "Rename, file in a folder (null: none), archive or unarchive",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        params: IdParam,
        body: jsonBody(
          z
            .strictObject({
              title: Title.optional(),
              folder: Folder.nullable().optional(),
              archived: z.boolean().optional(),
            })
            .refine((v) => Object.keys(v).length > 0, "give at least one of title, folder, archived"),
        ),
      },
      responses: {
        200: jsonResponse("The updated conversation", Conversation),
        404: problem("No such conversation (or not yours)"),
        422: problem("Nothing to change, or an invalid field"),
      },
    }),
    async (c) => {
      const row = await updateConversation(
        createDb(c.var.config),
        principalOf(c).userId,
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(conversationJson(row), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/conversations/{id}",
      tags: ["conversations"],
      summary: "Delete a conversation and its messages",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam },
      responses: { 204: { description: "Deleted" }, 404: problem("No such conversation (or not yours)") },
    }),
    async (c) => {
      await deleteConversation(createDb(c.var.config), principalOf(c).userId, c.req.valid("param").id);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}/messages",
      tags: ["conversations"],
      summary: "The visible thread, oldest first (each question before its answer)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam, query: z.object(Page) },
      responses: {
        200: jsonResponse("A page of messages", pageOf(Message)),
        404: problem("No such conversation (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { id } = c.req.valid("param");
      const { page, page_size } = c.req.valid("query");
      await ownConversation(db, principalOf(c).userId, id);
      const { rows, total } = await listMessages(db, id, page, page_size);
      return c.json({ items: rows.map(messageJson), total, page, page_size }, 200);
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
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}/export",
      tags: ["conversations"],
      summary: "The visible thread as Markdown, with each answer's sources",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam, query: z.object({ format: z.enum(["markdown"]).default("markdown") }) },
      responses: {
        200: { description: "text/markdown", content: { "text/markdown": { schema: z.string() } } },
        404: problem("No such conversation (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const conversation = await ownConversation(db, principalOf(c).userId, c.req.valid("param").id);
      const markdown = exportMarkdown(conversation, await thread(db, conversation.id));
      return c.body(markdown, 200, {
        "content-type": "text/markdown; charset=utf-8",
        "content-disposition": `attachment; filename="conversation-${conversation.id}.md"`,
      });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/users/me/usage",
      tags: ["conversations"],
      summary: "Your model calls, tokens and cost since a time (default: the last 30 days)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { query: z.object({ since: z.iso.datetime({ offset: true }).optional() }) },
      responses: {
        200: jsonResponse("Totals", Usage.extend({ since: z.string() })),
        401: problem("Not signed in"),
        422: problem("since is not an ISO 8601 time"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const since = query.since ? new Date(query.since) : new Date(Date.now() - USAGE_WINDOW_MS);
      const totals = await usageTotals(createDb(c.var.config), { userId: principalOf(c).userId, since });
      return c.json({ ...totals, since: since.toISOString() }, 200);
    },
  );
