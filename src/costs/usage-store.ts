import { and, eq, gte, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { createDb, type Database } from "../db/client.ts";
import { llmUsage } from "../db/schema/conversations.ts";
import type { ChatUsage } from "../llm/port.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import type { ModelFeature } from "./model-calls.ts";

interface UsageRow {
  feature: ModelFeature;
  userId: string | null;
  conversationId?: string | null;
  channel: string;
  provider: string;
  model: string;
  /** The call outcome, or what the feature says of it (answers: answered, no_sources ...). */
  outcome: string;
  result?: string;
  usage: ChatUsage;
  costUsd: number | null;
  latencyMs: number;
  firstTokenMs?: number | null;
}

/** Stores one model call. Accounting must not fail the work it accounts for: errors are logged. */
export async function insertUsage(config: Config, row: UsageRow): Promise<void> {
  try {
    await createDb(config)
      .insert(llmUsage)
      .values({
        feature: row.feature,
        userId: row.userId,
        conversationId: row.conversationId ?? null,
        channel: row.channel,
        provider: row.provider,
        model: row.model,
        outcome: row.result ?? row.outcome,
        promptTokens: row.usage.promptTokens,
        completionTokens: row.usage.completionTokens,
        costUsd: row.costUsd,
        latencyMs: row.latencyMs,
        firstTokenMs: row.firstTokenMs ?? null,
      });
  } catch (error) {
    log("error", "model usage could not be recorded", { error: describeError(error), model: row.model });
  }
}

interface UsageTotals {
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
}

/** Calls, tokens and cost for one user, optionally one conversation, optionally since a time. */
export async function usageTotals(
  db: Database,
  scope: { userId: string; conversationId?: string; since?: Date },
): Promise<UsageTotals> {
  const [row] = await db
    .select({
      calls: sql<number>`count(*)::int`,
      prompt_tokens: sql<number>`coalesce(sum(${llmUsage.promptTokens}), 0)::int`,
      completion_tokens: sql<number>`coalesce(sum(${llmUsage.completionTokens}), 0)::int`,
      cost_usd: sql<number>`coalesce(sum(${llmUsage.costUsd}), 0)::float8`,
    })
    .from(llmUsage)
    .where(
      and(
        eq(llmUsage.userId, scope.userId),
        scope.conversationId ? eq(llmUsage.conversationId, scope.conversationId) : undefined,
        scope.since ? gte(llmUsage.createdAt, scope.since) : undefined,
      ),
    );
  return {
    calls: Number(row?.calls ?? 0),
    prompt_tokens: Number(row?.prompt_tokens ?? 0),
    completion_tokens: Number(row?.completion_tokens ?? 0),
    cost_usd: Number(row?.cost_usd ?? 0),
  };
}

/** A user's spend in US dollars since a time: one query on llm_usage_user_idx (user_id, created_at). */
export async function spentSince(db: Database, userId: string, since: Date): Promise<number> {
  const [row] = await db
    .select({ spent: sql<number>`coalesce(sum(${llmUsage.costUsd}), 0)::float8` })
    .from(llmUsage)
    .where(and(eq(llmUsage.userId, userId), gte(llmUsage.createdAt, since)));
  return Number(row?.spent ?? 0);
}
