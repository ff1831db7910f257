import type { Config } from "../config.ts";
import { createDb } from "../db/client.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { isFreeModel } from "../llm/pricing.ts";
import { recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { spentSince } from "./usage-store.ts";

/** The calls COST_USER_DAILY_CAP_USD guards: what the route is about to start for the user. */
export type CappedCall = "answer" | "voice" | { search: "hybrid" | "keyword" | "vector" };

type PricingConfig = Pick<
  Config,
  | "OPENAI_API_KEY"
  | "LLM_PRICES"
  | "CHAT_MODEL"
  | "EMBEDDING_MODEL"
  | "RETRIEVAL_RERANKER"
  | "RETRIEVAL_RERANK_MODEL"
  | "VOICE_REALTIME_MODEL"
>;

/**
 * Whether the call may spend money under this configuration. Without OPENAI_API_KEY every provider is
 * in-Worker and free; a model priced 0/0 in LLM_PRICES (a self-hosted endpoint) is free too.
 */
export function spendsMoney(config: PricingConfig, call: CappedCall): boolean {
  const paid = (model: string) => Boolean(config.OPENAI_API_KEY) && !isFreeModel(config, model);
  const reranks = config.RETRIEVAL_RERANKER === "llm" && paid(config.RETRIEVAL_RERANK_MODEL ?? config.CHAT_MODEL);
  if (call === "voice") return paid(config.VOICE_REALTIME_MODEL);
  // An answer searches by meaning (hybrid) before it asks the chat model.
  if (call === "answer") return paid(config.CHAT_MODEL) || paid(config.EMBEDDING_MODEL) || reranks;
  return (call.search !== "keyword" && paid(config.EMBEDDING_MODEL)) || reranks;
}

/** The next midnight UTC after `now`: when a user's daily spend starts again from zero. */
export function nextUtcMidnight(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
}

const startOfUtcDay = (now: Date) => new Date(nextUtcMidnight(now).getTime() - 86_400_000);

interface CapDeps {
  /** The user's spend since a time; by default one indexed query on llm_usage. */
  spentSince?: (userId: string, since: Date) => Promise<number>;
  now?: Date;
}

/**
 * Refuses with 429 BUDGET_EXCEEDED (Retry-After: seconds to midnight UTC, `resetsAt` in the body) once
 * the user's spend this UTC day has reached COST_USER_DAILY_CAP_USD. Reads nothing when no cap is set or
 * the call cannot spend. Call it before a stream or socket starts: the refusal must be the response.
 * Fails open (logged) when the spend cannot be read: the cap bounds spend, it must not take answers down.
 */
export async function enforceDailyCap(
  config: Config,
  env: Env,
  userId: string,
  call: CappedCall,
  deps: CapDeps = {},
): Promise<void> {
  const cap = config.COST_USER_DAILY_CAP_USD;
  if (cap === undefined || !spendsMoney(config, call)) return;
  const now = deps.now ?? new Date();
  const read = deps.spentSince ?? ((user: string, since: Date) => spentSince(createDb(config), user, since));
  let spent: number;
  try {
    spent = await read(userId, startOfUtcDay(now));
  } catch (error) {
    log("error", "daily spend unreadable: the cap is not enforced for this call", { error: describeError(error) });
    return;
  }
  if (spent < cap) return;
  await recordMetrics(env, undefined, { name: "rate_limited_total", labels: { rule: "cost_cap" }, value: 1 });
  const resetsAt = nextUtcMidnight(now);
  const retryAfterSeconds = Math.ceil((resetsAt.getTime() - now.getTime()) / 1000);
  throw new ApiError(
    "BUDGET_EXCEEDED",
    `Your daily spending cap of $${cap} (COST_USER_DAILY_CAP_USD) is reached. It resets at midnight UTC (${resetsAt.toISOString()}), in ${retryAfterSeconds} seconds.`,
    {
      headers: { "Retry-After": String(retryAfterSeconds) },
      extensions: { retryAfterSeconds, resetsAt: resetsAt.toISOString() },
    },
  );
}
