import { z } from "@hono/zod-openapi";
import type { FeedbackRow } from "../../conversations/feedback.ts";
import type { ConversationRow } from "../../conversations/store.ts";
import type { MessageJson } from "../../conversations/wire.ts";
import { CitationSchema } from "../answer-wire.ts";

// What the conversation, message and usage routes have in common.

export const IdParam = z.object({ id: z.uuid() });
export const MessageParam = z.object({ id: z.uuid(), message_id: z.uuid() });
export const Title = z.string().trim().min(1, "must not be empty").max(200);
export const Folder = z.string().trim().min(1).max(100);
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

// The chat room sends messages too, so their shape (messageJson) lives in src/conversations/wire.ts;
// this fails to compile when that shape and this schema drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _messageShape: Same<z.infer<typeof Message>, MessageJson> = true;

export const conversationJson = (row: ConversationRow): z.infer<typeof Conversation> => ({
  id: row.id,
  title: row.title,
  folder: row.folder,
  archived: row.archived,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

/** The caller's rating of an answer. */
export const Feedback = z
  .object({
    message_id: z.uuid(),
    rating: z.enum(["up", "down"]),
    comment: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Feedback");

export const feedbackJson = (row: FeedbackRow): z.infer<typeof Feedback> => ({
  message_id: row.messageId,
  rating: row.rating,
  comment: row.comment,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

/** A message of the thread listing: with the caller's rating of it (null when none, always null for questions). */
export const ThreadMessage = Message.extend({ feedback: Feedback.nullable() }).openapi("ThreadMessage");
