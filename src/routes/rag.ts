import { createRoute, z } from "@hono/zod-openapi";
import { loadHistory } from "../conversations/store.ts";
import { enforceDailyCap } from "../costs/daily-cap.ts";
import { principalOf, requireUser } from "../middleware/auth.ts";
import { answerQuestion } from "../rag/answer.ts";
import { AnswerSchema, answerJson, collectAnswer, sseResponse, streamAnswer, wantsStream } from "./answer-wire.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";
import { SearchFiltersSchema, toSearchFilters } from "./search.ts";

const QueryRequest = z
  .strictObject({
    query: z.string().trim().min(1, "must not be empty").max(4_000),
    conversation_id: z.uuid().optional().describe("answer with this conversation's recent history (not stored)"),
    filters: SearchFiltersSchema.optional(),
    stream: z.boolean().optional().describe("SSE when true; default: Accept: text/event-stream"),
  })
  .openapi("RagQueryRequest");

export const ragRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/api/rag/query",
    tags: ["answers"],
    summary: "Answer a question from the knowledge base, with citations (JSON, or SSE when streaming)",
    security: signedIn,
    middleware: [requireUser] as const,
    request: { body: jsonBody(QueryRequest) },
    responses: {
      200: {
        ...jsonResponse("The answer with its citations, usage and cost", AnswerSchema),
        content: { ...jsonResponse("", AnswerSchema).content, ...sseResponse("").content },
      },
      401: problem("Not signed in"),
      404: problem("No such conversation (or not yours)"),
      422: problem("Empty query, an unknown field, or PHI refused (PHI_MODE=block)"),
      429: problem("Daily spending cap reached: BUDGET_EXCEEDED, Retry-After until midnight UTC"),
      502: problem("The chat model failed"),
      504: problem("The chat model timed out"),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const { userId } = principalOf(c);
    // Before the stream starts, so a capped caller gets the 429 itself rather than an error event.
    await enforceDailyCap(c.var.config, c.env, userId, "answer");
    const history = body.conversation_id ? await loadHistory(c.var.config, userId, body.conversation_id) : [];
    const cancel = new AbortController();
    const events = answerQuestion(
      c.var.config,
      c.env,
      {
        question: body.query,
        history,
        filters: toSearchFilters(body.filters),
        channel: "query",
        userId,
        conversationId: body.conversation_id,
        signal: cancel.signal,
      },
      { ctx: c.executionCtx },
    );
    if (wantsStream(c, body.stream)) return streamAnswer(c, cancel, events);
    return c.json(answerJson(await collectAnswer(events)), 200);
  },
);
