import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { AppEnv } from "../app-env.ts";
import { ApiError, type ProblemCode, problemCodes } from "../errors.ts";
import type { Answer, AnswerEvent } from "../rag/answer.ts";

// How answers look on the wire, shared by POST /api/rag/query and the conversation routes.

export const CitationSchema = z
  .object({
    index: z.number().int().describe("the [n] marker in the answer"),
    document_id: z.uuid(),
    external_id: z.string().nullable(),
    title: z.string(),
    chunk_id: z.uuid(),
    page: z.number().int().nullable(),
    snippet: z.string().describe("exact text of the chunk that supports the statements citing it"),
    score: z.number(),
  })
  .openapi("Citation");

export const AnswerSchema = z
  .object({
    content: z.string(),
    citations: z.array(CitationSchema),
    invalid_citations: z.number().int().describe("markers that named no source and were removed"),
    outcome: z.enum(["answered", "no_sources"]),
    provider: z.string(),
    model: z.string(),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }),
    cost_usd: z.number().nullable().describe("from the price table; null for a model without a price"),
    latency_ms: z.number().int(),
    first_token_ms: z.number().int().nullable(),
    disclaimer: z.string(),
  })
  .openapi("Answer");

export const answerJson = (answer: Answer): z.infer<typeof AnswerSchema> => ({
  content: answer.content,
  citations: answer.citations,
  invalid_citations: answer.invalidCitations,
  outcome: answer.outcome,
  provider: answer.provider,
  model: answer.model,
  usage: { prompt_tokens: answer.usage.promptTokens, completion_tokens: answer.usage.completionTokens },
  cost_usd: answer.costUsd,
  latency_ms: answer.latencyMs,
  first_token_ms: answer.firstTokenMs,
  disclaimer: answer.disclaimer,
});

export const sseResponse = (description: string) => ({
  description,
  content: {
    "text/event-stream": {
      schema: z.string().describe("events: delta {text}, citations {citations}, done {answer…}, error {code, message}"),
    },
  },
});

/** Whether the client asked for a stream: `stream: true`, or Accept: text/event-stream. */
export const wantsStream = (c: Context<AppEnv>, stream: boolean | undefined): boolean =>
  stream ?? (c.req.header("accept") ?? "").includes("text/event-stream");

/** The error event of a stream, as the ApiError a JSON caller gets. */
export function answerFailure(event: Extract<AnswerEvent, { type: "error" }>): ApiError {
  const code = (event.code in problemCodes ? event.code : "INTERNAL") as ProblemCode;
  return new ApiError(code, event.message);
}

/** Runs an answer to its end and returns the `done` answer; a stream error becomes the ApiError. */
export async function collectAnswer(events: AsyncIterable<AnswerEvent>): Promise<Answer> {
  for await (const event of events) {
    if (event.type === "error") throw answerFailure(event);
    if (event.type === "done") return event.answer;
  }
  throw new ApiError("INTERNAL", "The answer ended without a result. Quote the requestId when reporting it.");
}

/**
 * Streams answer events as SSE. A client that disconnects aborts `cancel`, which the model call
 * listens to; `done` can carry extra fields (the stored message ids of a conversation).
 */
export function streamAnswer<E extends { type: string }>(
  c: Context<AppEnv>,
  cancel: AbortController,
  events: AsyncIterable<E>,
  extra: (event: E) => { event: string; data: unknown } | undefined = () => undefined,
): Response {
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => cancel.abort());
    for await (const event of events) {
      if (stream.aborted) break;
      const custom = extra(event);
      // Events the caller does not map are answer events.
      const message = custom ?? wireEvent(event as unknown as AnswerEvent);
      if (message) await stream.writeSSE({ event: message.event, data: JSON.stringify(message.data) });
    }
  });
}

function wireEvent(event: AnswerEvent): { event: string; data: unknown } | undefined {
  switch (event.type) {
    case "delta":
      return { event: "delta", data: { text: event.text } };
    case "citations":
      return { event: "citations", data: { citations: event.citations } };
    case "done":
      return { event: "done", data: answerJson(event.answer) };
    case "error":
      return { event: "error", data: { code: event.code, message: event.message } };
  }
}
