import { and, eq, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { createDb, type Database, queryRows } from "../db/client.ts";
import { messages } from "../db/schema/conversations.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { type Answer, type AnswerChannel, type AnswerDeps, type AnswerEvent, answerQuestion } from "../rag/answer.ts";
import type { SearchFilters } from "../rag/filters.ts";
import { DEFAULT_TITLE, findMessage, firstReply, loadHistory, type MessageRow, ownConversation } from "./store.ts";

/** What a turn streams: the stored question, the answer as it comes, then the stored answer. */
export type TurnEvent =
  | Exclude<AnswerEvent, { type: "done" }>
  | { type: "user_message"; message: MessageRow; replayed: boolean }
  | { type: "done"; answer: Answer; message: MessageRow; userMessage: MessageRow; replayed: boolean };

export interface TurnContext {
  userId: string;
  conversationId: string;
  channel: AnswerChannel;
  filters?: SearchFilters;
  signal?: AbortSignal;
}

const POLL_MS = 250;
const TITLE_CHARS = 80;
// A reply claimed longer ago than the whole answer may take (plus slack) was abandoned by a crash.
const staleAfterMs = (config: Config) => config.CHAT_TIMEOUT_MS + 30_000;

const titleFrom = (content: string) => {
  const line = content.trim().split("\n")[0] ?? "";
  return line.length > TITLE_CHARS ? `${line.slice(0, TITLE_CHARS - 1)}…` : line;
};

/**
 * Sends a user message and answers it. Idempotent on clientMessageId: a retry, even one racing the
 * first send, stores nothing new and gets the first send's answer.
 */
export async function* sendMessage(
  config: Config,
  env: Env,
  turn: TurnContext,
  message: { content: string; clientMessageId: string },
  deps: AnswerDeps = {},
): AsyncGenerator<TurnEvent> {
  const db = createDb(config);
  await ownConversation(db, turn.userId, turn.conversationId);
  const placed = await queryRows<{ id: string }>(
    db,
    sql`with existing as (
          select 1 from messages where conversation_id = ${turn.conversationId} and client_message_id = ${message.clientMessageId}
        ),
        numbered as (
          update conversations
             set next_turn = next_turn + 1, updated_at = now(),
                 title = case when title = ${DEFAULT_TITLE} and next_turn = 1 then ${titleFrom(message.content)} else title end
           where id = ${turn.conversationId} and not exists (select 1 from existing)
          returning next_turn - 1 as turn
        )
        insert into messages (conversation_id, turn, role, content, client_message_id, reply_status, reply_claimed_at)
        select ${turn.conversationId}, numbered.turn, 'user', ${message.content}, ${message.clientMessageId}, 'pending', now()
          from numbered
        on conflict (conversation_id, client_message_id) do nothing
        returning id`,
  );
  yield* answerPlaced(config, env, db, turn, message.clientMessageId, placed.length > 0, deps);
}

/** Replaces a user message with a new version (later turns leave the thread, kept as history) and answers it. */
export async function* editMessage(
  config: Config,
  env: Env,
  turn: TurnContext,
  edit: { messageId: string; content: string; clientMessageId: string },
  deps: AnswerDeps = {},
): AsyncGenerator<TurnEvent> {
  const db = createDb(config);
  await ownConversation(db, turn.userId, turn.conversationId);
  const original = await findMessage(db, turn.conversationId, edit.messageId);
  if (original.role !== "user") throw userMessageOnly("edited");
  const placed = await queryRows<{ id: string }>(
    db,
    sql`with existing as (
          select 1 from messages where conversation_id = ${turn.conversationId} and client_message_id = ${edit.clientMessageId}
        ),
        retired as (
          update messages set active = false
           where conversation_id = ${turn.conversationId} and turn >= ${original.turn} and active
             and not exists (select 1 from existing)
        ),
        touched as (
          update conversations set updated_at = now()
           where id = ${turn.conversationId} and not exists (select 1 from existing)
        )
        insert into messages (conversation_id, turn, role, version, content, client_message_id, reply_status, reply_claimed_at)
        select ${turn.conversationId}, ${original.turn}, 'user',
               coalesce((select max(version) from messages
                          where conversation_id = ${turn.conversationId} and turn = ${original.turn} and role = 'user'), 0) + 1,
               ${edit.content}, ${edit.clientMessageId}, 'pending', now()
         where not exists (select 1 from existing)
        on conflict (conversation_id, client_message_id) do nothing
        returning id`,
  );
  yield* answerPlaced(config, env, db, turn, edit.clientMessageId, placed.length > 0, deps);
}

/** Answers a turn's question again: a new version of the answer; later turns leave the thread. */
export async function* regenerate(
  config: Config,
  env: Env,
  turn: TurnContext,
  messageId: string,
  deps: AnswerDeps = {},
): AsyncGenerator<TurnEvent> {
  const db = createDb(config);
  await ownConversation(db, turn.userId, turn.conversationId);
  const target = await findMessage(db, turn.conversationId, messageId);
  const question = target.role === "user" ? target : await findMessage(db, turn.conversationId, target.replyTo ?? "");
  if (!question.active) {
    throw new ApiError("CONFLICT", "This message is an old version: regenerate from the current thread.");
  }
  const claimed = await claimReply(db, config, question.id, { answered: true });
  if (!claimed) throw new ApiError("CONFLICT", "This question is being answered right now; wait for that answer.");
  await db
    .update(messages)
    .set({ active: false })
    .where(
      and(
        eq(messages.conversationId, turn.conversationId),
        sql`${messages.turn} > ${question.turn}`,
        eq(messages.active, true),
      ),
    );
  yield { type: "user_message", message: claimed, replayed: false };
  yield* generate(config, env, db, turn, claimed, deps);
}

/** After placing a user message: answer it, or, if it was already there, return (or await) its answer. */
async function* answerPlaced(
  config: Config,
  env: Env,
  db: Database,
  turn: TurnContext,
  clientMessageId: string,
  created: boolean,
  deps: AnswerDeps,
): AsyncGenerator<TurnEvent> {
  const [placed] = await db
    .select()
    .from(messages)
    .where(and(eq(messages.conversationId, turn.conversationId), eq(messages.clientMessageId, clientMessageId)));
  if (!placed) throw new ApiError("NOT_FOUND", "No conversation with this id.");
  if (created) {
    yield { type: "user_message", message: placed, replayed: false };
    yield* generate(config, env, db, turn, placed, deps);
    return;
  }
  yield { type: "user_message", message: placed, replayed: true };
  const deadline = Date.now() + staleAfterMs(config);
  while (!turn.signal?.aborted) {
    const reply = await firstReply(db, placed.id);
    if (reply) {
      yield* replay(config, reply, placed);
      return;
    }
    // The first send failed, or crashed while answering: this retry answers instead.
    const claimed = await claimReply(db, config, placed.id, { answered: false });
    if (claimed) {
      yield* generate(config, env, db, turn, claimed, deps);
      return;
    }
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (!turn.signal?.aborted) {
    yield {
      type: "error",
      code: "CONFLICT",
      message: "The first send of this message is still being answered; retry in a moment.",
    };
  }
}

/**
 * Takes over answering a user message whose reply failed or was abandoned (and, to regenerate, one
 * already answered); undefined if someone else is answering it now.
 */
async function claimReply(
  db: Database,
  config: Config,
  userMessageId: string,
  options: { answered: boolean },
): Promise<MessageRow | undefined> {
  const stale = new Date(Date.now() - staleAfterMs(config));
  const claimable = options.answered ? sql`('failed', 'answered')` : sql`('failed')`;
  const [claimed] = await db
    .update(messages)
    .set({ replyStatus: "pending", replyClaimedAt: new Date() })
    .where(
      and(
        eq(messages.id, userMessageId),
        sql`(${messages.replyStatus} in ${claimable} or (${messages.replyStatus} = 'pending' and ${messages.replyClaimedAt} < ${stale}))`,
      ),
    )
    .returning();
  return claimed;
}

/**
 * Marks a question whose answer was cut off (its chat room evicted mid-turn) as failed, if it is still pending
 * (an answer stored before the eviction left it answered), so a resend answers it now instead of waiting for
 * the claim to go stale (CHAT_TIMEOUT_MS + 30 s).
 */
export async function releaseAbandonedQuestion(
  db: Database,
  conversationId: string,
  clientMessageId: string,
): Promise<void> {
  await db
    .update(messages)
    .set({ replyStatus: "failed" })
    .where(
      and(
        eq(messages.conversationId, conversationId),
        eq(messages.clientMessageId, clientMessageId),
        eq(messages.replyStatus, "pending"),
      ),
    );
}

async function* replay(config: Config, reply: MessageRow, userMessage: MessageRow): AsyncGenerator<TurnEvent> {
  const answer = storedAnswer(reply, config.RAG_MEDICAL_DISCLAIMER);
  yield { type: "delta", text: reply.content };
  yield { type: "citations", citations: answer.citations };
  yield { type: "done", answer, message: reply, userMessage, replayed: true };
}

/** Runs the answer for a claimed user message and stores it; a failure or cancel leaves it retryable. */
async function* generate(
  config: Config,
  env: Env,
  db: Database,
  turn: TurnContext,
  question: MessageRow,
  deps: AnswerDeps,
): AsyncGenerator<TurnEvent> {
  const history = await loadHistory(config, turn.userId, turn.conversationId, question.turn);
  let stored = false;
  try {
    for await (const event of answerQuestion(
      config,
      env,
      {
        question: question.content,
        history,
        filters: turn.filters,
        channel: turn.channel,
        userId: turn.userId,
        conversationId: turn.conversationId,
        signal: turn.signal,
      },
      deps,
    )) {
      if (event.type !== "done") {
        yield event;
        continue;
      }
      const reply = await storeReply(db, question, event.answer);
      stored = true;
      yield { type: "done", answer: event.answer, message: reply, userMessage: question, replayed: false };
    }
  } finally {
    if (!stored) await db.update(messages).set({ replyStatus: "failed" }).where(eq(messages.id, question.id));
  }
}

/** Stores the answer as the turn's active assistant version and marks the question answered, in one statement. */
async function storeReply(db: Database, question: MessageRow, answer: Answer): Promise<MessageRow> {
  const [row] = await queryRows<{ id: string }>(
    db,
    sql`with retired as (
          update messages set active = false
           where conversation_id = ${question.conversationId} and turn = ${question.turn} and role = 'assistant' and active
        ),
        answered as (
          update messages set reply_status = 'answered' where id = ${question.id}
        ),
        touched as (
          update conversations set updated_at = now() where id = ${question.conversationId}
        )
        insert into messages (conversation_id, turn, role, version, content, reply_to, citations, invalid_citations,
                              provider, model, prompt_tokens, completion_tokens, cost_usd, latency_ms, first_token_ms)
        select ${question.conversationId}, ${question.turn}, 'assistant',
               coalesce((select max(version) from messages
                          where conversation_id = ${question.conversationId} and turn = ${question.turn} and role = 'assistant'), 0) + 1,
               ${answer.content}, ${question.id}, ${JSON.stringify(answer.citations)}::jsonb, ${answer.invalidCitations},
               ${answer.provider}, ${answer.model}, ${answer.usage.promptTokens}, ${answer.usage.completionTokens},
               ${answer.costUsd}, ${answer.latencyMs}, ${answer.firstTokenMs}
        returning id`,
  );
  const [reply] = await db
    .select()
    .from(messages)
    .where(eq(messages.id, (row as { id: string }).id));
  return reply as MessageRow;
}

/** An assistant message as the Answer it was stored from. */
function storedAnswer(reply: MessageRow, disclaimer: string): Answer {
  return {
    content: reply.content,
    citations: reply.citations as Answer["citations"],
    invalidCitations: reply.invalidCitations,
    provider: reply.provider ?? "none",
    model: reply.model ?? "none",
    usage: { promptTokens: reply.promptTokens ?? 0, completionTokens: reply.completionTokens ?? 0 },
    costUsd: reply.costUsd,
    latencyMs: reply.latencyMs ?? 0,
    firstTokenMs: reply.firstTokenMs,
    outcome: reply.provider === "none" ? "no_sources" : "answered",
    disclaimer,
  };
}

const userMessageOnly = (verb: string) =>
  new ApiError("VALIDATION_FAILED", `Only your own (user) messages can be ${verb}; regenerate an answer instead.`, {
    errors: [{ field: "message_id", message: "must be a user message" }],
  });

/** A turn answered elsewhere (a voice session): question and answer stored together, both answered. */
export async function storeExchange(
  db: Database,
  conversationId: string,
  exchange: {
    question: string;
    answer: string;
    citations: Answer["citations"];
    provider: string;
    model: string;
    inputTokens: number;
    outputTokens: number;
  },
): Promise<void> {
  await db.execute(
    sql`with numbered as (
          update conversations
             set next_turn = next_turn + 1, updated_at = now(),
                 title = case when title = ${DEFAULT_TITLE} and next_turn = 1 then ${titleFrom(exchange.question)} else title end
           where id = ${conversationId}
          returning next_turn - 1 as turn
        ),
        question as (
          insert into messages (conversation_id, turn, role, content, reply_status)
          select ${conversationId}, numbered.turn, 'user', ${exchange.question}, 'answered' from numbered
          returning id, turn
        )
        insert into messages (conversation_id, turn, role, content, reply_to, citations, provider, model,
                              prompt_tokens, completion_tokens)
        select ${conversationId}, question.turn, 'assistant', ${exchange.answer}, question.id,
               ${JSON.stringify(exchange.citations)}::jsonb, ${exchange.provider}, ${exchange.model},
               ${exchange.inputTokens}, ${exchange.outputTokens}
          from question`,
  );
}
