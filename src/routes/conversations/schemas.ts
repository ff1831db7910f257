import { z } from "@hono/zod-openapi";
import type { ConversationRow, MessageRow } from "../../conversations/store.ts";
import { CitationSchema } from "../answer-wire.ts";

// What the conversation, message and usage routes (and the chat socket's frames) have in common.

export const IdParam = z.object({ id: z.uuid() });
export const MessageParam = z.object({ id: z.uuid(), message_id: z.uuid() });
export const Title = z.string().trim().min(1, "must not be empty").max(200);
export const Folder = z.string().trim().min(1).max(100);
export const Page = {
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(200).default(50),
};

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), page: z.number().int(), page_size: z.number().int() });

export const Conversation = z
  .object({
    id: z.uuid(),
    title: z.string(),
    folder: z.string().nullable(),
    archived: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Conversation");

export const Usage = z.object({
  calls: z.number().int(),
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  cost_usd: z.number(),
});

export const Message = z
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

export const conversationJson = (row: ConversationRow): z.infer<typeof Conversation> => ({
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
