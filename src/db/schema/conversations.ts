import { sql } from "drizzle-orm";
import {
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { users } from "./identity.ts";

const id = () => uuid("id").primaryKey().default(sql`gen_random_uuid()`);
const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

export const conversations = pgTable(
  "conversations",
  {
    id: id(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    title: text("title").notNull(),
    folder: text("folder"),
    archived: boolean("archived").notNull().default(false),
    // Turn numbers are handed out by an atomic increment, so racing sends never share one.
    nextTurn: integer("next_turn").notNull().default(1),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("conversations_user_idx").on(t.userId, t.archived, t.updatedAt)],
);

const messageRoles = ["user", "assistant"] as const;
const replyStatuses = ["pending", "answered", "failed"] as const;

/**
 * One version of one side of a turn. Editing or regenerating adds a version and deactivates the
 * versions (and later turns) it replaces, so the visible thread is the active rows and nothing is lost.
 */
export const messages = pgTable(
  "messages",
  {
    id: id(),
    conversationId: uuid("conversation_id")
      .notNull()
      .references(() => conversations.id, { onDelete: "cascade" }),
    turn: integer("turn").notNull(),
    role: text("role", { enum: messageRoles }).notNull(),
    version: integer("version").notNull().default(1),
    active: boolean("active").notNull().default(true),
    content: text("content").notNull(),
    // User messages: the client's idempotency key, and the state of their reply.
    clientMessageId: text("client_message_id"),
    replyStatus: text("reply_status", { enum: replyStatuses }),
    replyClaimedAt: timestamp("reply_claimed_at", { withTimezone: true }),
    // Assistant messages: the user message answered, and how.
    replyTo: uuid("reply_to"),
    citations: jsonb("citations").notNull().default(sql`'[]'::jsonb`),
    invalidCitations: integer("invalid_citations").notNull().default(0),
    provider: text("provider"),
    model: text("model"),
    promptTokens: integer("prompt_tokens"),
    completionTokens: integer("completion_tokens"),
    costUsd: doublePrecision("cost_usd"),
    latencyMs: integer("latency_ms"),
    firstTokenMs: integer("first_token_ms"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("messages_client_message_id_key").on(t.conversationId, t.clientMessageId),
    index("messages_thread_idx").on(t.conversationId, t.active, t.turn),
    index("messages_reply_to_idx").on(t.replyTo),
  ],
);

const usageFeatures = ["answers", "embeddings", "reranker", "voice"] as const;

/** Every paid model call, for cost and usage per user, conversation and feature (docs/costs.md). */
export const llmUsage = pgTable(
  "llm_usage",
  {
    id: id(),
    feature: text("feature", { enum: usageFeatures }).notNull(),
    userId: uuid("user_id").references(() => users.id, { onDelete: "set null" }),
    conversationId: uuid("conversation_id").references(() => conversations.id, { onDelete: "set null" }),
    channel: text("channel").notNull(), // query | conversation | websocket | voice | search | ingest
    provider: text("provider").notNull(),
    model: text("model").notNull(),
    outcome: text("outcome").notNull(),
    promptTokens: integer("prompt_tokens").notNull().default(0),
    completionTokens: integer("completion_tokens").notNull().default(0),
    costUsd: doublePrecision("cost_usd"), // null when the model has no price in the table
    latencyMs: integer("latency_ms").notNull(),
    firstTokenMs: integer("first_token_ms"),
    createdAt: createdAt(),
  },
  (t) => [
    index("llm_usage_user_idx").on(t.userId, t.createdAt),
    index("llm_usage_conversation_idx").on(t.conversationId),
    // The admin cost report reads a time range across all users.
    index("llm_usage_created_idx").on(t.createdAt),
  ],
);

const feedbackRatings = ["up", "down"] as const;

/** A user's rating of one assistant message (satisfaction): one per user and message, replaced on a new rating. */
export const messageFeedback = pgTable(
  "message_feedback",
  {
    id: id(),
    messageId: uuid("message_id")
      .notNull()
      .references(() => messages.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    rating: text("rating", { enum: feedbackRatings }).notNull(),
    comment: text("comment"),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("message_feedback_message_user_key").on(t.messageId, t.userId),
    index("message_feedback_user_idx").on(t.userId),
  ],
);
