import type { Citation } from "../rag/citations.ts";
import type { MessageRow } from "./store.ts";

// How a message looks on the wire: the conversation routes and the chat room's socket frames send the
// same shape. The routes' OpenAPI schema (Message in src/routes/conversations/schemas.ts) must match it.

export interface MessageJson {
  id: string;
  conversation_id: string;
  turn: number;
  role: "user" | "assistant";
  version: number;
  active: boolean;
  content: string;
  client_message_id: string | null;
  reply_to: string | null;
  citations: Citation[];
  invalid_citations: number;
  provider: string | null;
  model: string | null;
  usage: { prompt_tokens: number; completion_tokens: number } | null;
  cost_usd: number | null;
  latency_ms: number | null;
  first_token_ms: number | null;
  created_at: string;
}

export const messageJson = (row: MessageRow): MessageJson => ({
  id: row.id,
  conversation_id: row.conversationId,
  turn: row.turn,
  role: row.role,
  version: row.version,
  active: row.active,
  content: row.content,
  client_message_id: row.clientMessageId,
  reply_to: row.replyTo,
  citations: row.citations as Citation[],
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
