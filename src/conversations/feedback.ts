import { and, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { messageFeedback, messages } from "../db/schema/conversations.ts";
import { ApiError } from "../errors.ts";

// Satisfaction: a user's up/down rating (with an optional comment) of an answer in their own conversation.
// One per user and message: rating again replaces it. The caller checks that the conversation is theirs.

export type FeedbackRow = typeof messageFeedback.$inferSelect;
export type FeedbackRating = FeedbackRow["rating"];

const noAnswer = () => new ApiError("NOT_FOUND", "No assistant message with this id in this conversation.");

/** The assistant message rated, or 404: a question, or a message of another conversation, is not ratable. */
async function ratableMessage(db: Database, conversationId: string, messageId: string): Promise<void> {
  const [message] = await db
    .select({ id: messages.id })
    .from(messages)
    .where(
      and(eq(messages.id, messageId), eq(messages.conversationId, conversationId), eq(messages.role, "assistant")),
    );
  if (!message) throw noAnswer();
}

/**
 * Stores the caller's rating of an answer, replacing an earlier one. `created` tells a first rating from a
 * replacement (xmax = 0 only for a row this statement inserted).
 */
export async function rateMessage(
  db: Database,
  userId: string,
  conversationId: string,
  messageId: string,
  feedback: { rating: FeedbackRating; comment: string | null },
): Promise<{ row: FeedbackRow; created: boolean }> {
  await ratableMessage(db, conversationId, messageId);
  const now = new Date();
  const [stored] = await db
    .insert(messageFeedback)
    .values({ messageId, userId, rating: feedback.rating, comment: feedback.comment, createdAt: now, updatedAt: now })
    .onConflictDoUpdate({
      target: [messageFeedback.messageId, messageFeedback.userId],
      set: { rating: feedback.rating, comment: feedback.comment, updatedAt: now },
    })
    .returning({ ...getTableColumns(messageFeedback), created: sql<boolean>`(xmax = 0)` });
  if (!stored) throw noAnswer();
  const { created, ...row } = stored;
  return { row, created };
}

/** Removes the caller's rating of an answer; 404 when there was none (or the message is not a ratable answer). */
export async function deleteFeedback(
  db: Database,
  userId: string,
  conversationId: string,
  messageId: string,
): Promise<void> {
  await ratableMessage(db, conversationId, messageId);
  const deleted = await db
    .delete(messageFeedback)
    .where(and(eq(messageFeedback.messageId, messageId), eq(messageFeedback.userId, userId)))
    .returning({ id: messageFeedback.id });
  if (deleted.length === 0) throw new ApiError("NOT_FOUND", "You have not rated this message.");
}

/** The caller's ratings of these messages, by message id (for the thread listing). */
export async function feedbackFor(
  db: Database,
  userId: string,
  messageIds: string[],
): Promise<Map<string, FeedbackRow>> {
  if (messageIds.length === 0) return new Map();
  const rows = await db
    .select()
    .from(messageFeedback)
    .where(and(eq(messageFeedback.userId, userId), inArray(messageFeedback.messageId, messageIds)));
  return new Map(rows.map((row) => [row.messageId, row]));
}
