import { and, asc, count, desc, eq, ilike, type SQL, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { createDb, type Database } from "../db/client.ts";
import { pageOffset } from "../db/paging.ts";
import { conversations, messages } from "../db/schema/conversations.ts";
import { ApiError } from "../errors.ts";
import type { HistoryTurn } from "../rag/prompt.ts";

export type ConversationRow = typeof conversations.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;

export const DEFAULT_TITLE = "New conversation";
// How much earlier conversation is read for a prompt; the token budget then trims it.
const HISTORY_MESSAGES = 40;

const notFound = () => new ApiError("NOT_FOUND", "No conversation with this id.");
const likePattern = (text: string) => `%${text.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;

/** The caller's conversation, or 404: another user's conversation is indistinguishable from none. */
export async function ownConversation(db: Database, userId: string, id: string): Promise<ConversationRow> {
  const [row] = await db
    .select()
    .from(conversations)
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)));
  if (!row) throw notFound();
  return row;
}

export async function createConversation(
  db: Database,
  userId: string,
  fields: { title?: string; folder?: string | null },
): Promise<ConversationRow> {
  const [row] = await db
    .insert(conversations)
    .values({ userId, title: fields.title ?? DEFAULT_TITLE, folder: fields.folder ?? null })
    .returning();
  return row as ConversationRow;
}

export interface ConversationQuery {
  page: number;
  pageSize: number;
  q?: string;
  archived?: boolean;
  folder?: string;
}

export async function listConversations(db: Database, userId: string, query: ConversationQuery) {
  const filters: SQL[] = [eq(conversations.userId, userId)];
  if (query.q) filters.push(ilike(conversations.title, likePattern(query.q)));
  if (query.archived !== undefined) filters.push(eq(conversations.archived, query.archived));
  if (query.folder !== undefined) filters.push(eq(conversations.folder, query.folder));
  const where = and(...filters);
  const [rows, totals] = await Promise.all([
    db
      .select()
      .from(conversations)
      .where(where)
      .orderBy(desc(conversations.updatedAt), desc(conversations.id))
      .limit(query.pageSize)
      .offset(pageOffset(query.page, query.pageSize)),
    db.select({ total: count() }).from(conversations).where(where),
  ]);
  return { rows, total: totals[0]?.total ?? 0 };
}

export async function updateConversation(
  db: Database,
  userId: string,
  id: string,
  patch: { title?: string; folder?: string | null; archived?: boolean },
): Promise<ConversationRow> {
  const [row] = await db
    .update(conversations)
    .set({ ...patch, updatedAt: new Date() })
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)))
    .returning();
  if (!row) throw notFound();
  return row;
}

export async function deleteConversation(db: Database, userId: string, id: string): Promise<void> {
  const deleted = await db
    .delete(conversations)
    .where(and(eq(conversations.id, id), eq(conversations.userId, userId)))
    .returning({ id: conversations.id });
  if (deleted.length === 0) throw notFound();
}

// The visible thread: active versions, by turn, the question before its answer.
const threadOrder = [asc(messages.turn), desc(messages.role)] as const;

export async function listMessages(db: Database, conversationId: string, page: number, pageSize: number) {
  const where = and(eq(messages.conversationId, conversationId), eq(messages.active, true));
  const [rows, totals] = await Promise.all([
    db
      .select()
      .from(messages)
      .where(where)
      .orderBy(...threadOrder)
      .limit(pageSize)
      .offset(pageOffset(page, pageSize)),
    db.select({ total: count() }).from(messages).where(where),
  ]);
  return { rows, total: totals[0]?.total ?? 0 };
}

/** The whole visible thread (for export and for the chat socket's history). */
export async function thread(db: Database, conversationId: string, last?: number): Promise<MessageRow[]> {
  const where = and(eq(messages.conversationId, conversationId), eq(messages.active, true));
  if (last === undefined)
    return db
      .select()
      .from(messages)
      .where(where)
      .orderBy(...threadOrder);
  const newest = await db
    .select()
    .from(messages)
    .where(where)
    .orderBy(desc(messages.turn), asc(messages.role))
    .limit(last);
  return newest.reverse();
}

/** Earlier turns of the caller's conversation as prompt history (404 if it is not theirs). */
export async function loadHistory(
  config: Config,
  userId: string,
  conversationId: string,
  beforeTurn?: number,
): Promise<HistoryTurn[]> {
  const db = createDb(config);
  await ownConversation(db, userId, conversationId);
  const rows = await db
    .select({ role: messages.role, content: messages.content, turn: messages.turn })
    .from(messages)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        eq(messages.active, true),
        // Questions that were never answered (refused, failed) are not part of the dialogue.
        sql`(${messages.role} = 'assistant' or ${messages.replyStatus} = 'answered')`,
        beforeTurn === undefined ? undefined : sql`${messages.turn} < ${beforeTurn}`,
      ),
    )
    .orderBy(desc(messages.turn), asc(messages.role))
    .limit(HISTORY_MESSAGES);
  return rows.reverse().map(({ role, content }) => ({ role, content }));
}

/** Every version of the turn side a message belongs to, oldest first. */
export async function messageVersions(db: Database, conversationId: string, messageId: string): Promise<MessageRow[]> {
  const [message] = await db
    .select()
    .from(messages)
    .where(and(eq(messages.id, messageId), eq(messages.conversationId, conversationId)));
  if (!message) throw new ApiError("NOT_FOUND", "No message with this id in this conversation.");
  return db
    .select()
    .from(messages)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        eq(messages.turn, message.turn),
        eq(messages.role, message.role),
      ),
    )
    .orderBy(asc(messages.version));
}

export async function findMessage(db: Database, conversationId: string, messageId: string): Promise<MessageRow> {
  const [message] = await db
    .select()
    .from(messages)
    .where(and(eq(messages.id, messageId), eq(messages.conversationId, conversationId)));
  if (!message) throw new ApiError("NOT_FOUND", "No message with this id in this conversation.");
  return message;
}

/** The first stored answer to a user message, if any: what a retried send returns. */
export async function firstReply(db: Database, userMessageId: string): Promise<MessageRow | undefined> {
  const [reply] = await db
    .select()
    .from(messages)
    .where(eq(messages.replyTo, userMessageId))
    .orderBy(asc(messages.version))
    .limit(1);
  return reply;
}
