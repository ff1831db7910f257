import { and, eq, gte, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import { createDb, type Database } from "../db/client.ts";
import { llmUsage } from "../db/schema/conversations.ts";
import type { ChatUsage } from "../llm/port.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";

interface UsageRecord {
  userId: string;
  conversationId: string | null;
  channel: string;
  provider: string;
  model: string;
  outcome: string;
  usage: ChatUsage;
  costUsd: number | null;
  latencyMs: number;
  firstTokenMs: number | null;
}

/** Stores one model call. Accounting must not fail the answer it accounts for: errors are logged. */
export async function recordUsage(config: Config, record: UsageRecord): Promise<void> {
  try {
    await createDb(config).insert(llmUsage).values({
      userId: record.userId,
      conversationId: record.conversationId,
      channel: record.channel,
      provider: record.provider,
      model: record.model,
      outcome: record.outcome,
      promptTokens: record.usage.promptTokens,
      completionTokens: record.usage.completionTokens,
      costUsd: record.costUsd,
      latencyMs: record.latencyMs,
      firstTokenMs: record.firstTokenMs,
    });
  } catch (error) {
    log("error", "model usage could not be recorded", { error: describeError(error), model: record.model });
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
