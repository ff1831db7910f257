import type { Config } from "../config.ts";
import type { Env } from "../env.ts";
import type { ChatUsage } from "../llm/port.ts";
import { costUsd, priceFor } from "../llm/pricing.ts";
import { inBackground, type MetricEvent, recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { insertUsage } from "./usage-store.ts";

/** What a model call was for: the `feature` of llm_usage rows and of the llm_* metrics. */
export type ModelFeature = "answers" | "embeddings" | "reranker" | "voice";
export type CallOutcome = "ok" | "timeout" | "cancelled" | "error";

/** One call of a model (or one metered unit of work: an answer's stream, a voice turn, an embedding batch). */
export interface ModelCall {
  feature: ModelFeature;
  provider: "openai" | "local";
  model: string;
  outcome: CallOutcome;
  usage: ChatUsage;
  latencyMs: number;
  /** Who spent: null when nobody in particular did (a document embedded without a known uploader). */
  userId: string | null;
  conversationId?: string | null;
  /** How the call was reached (query, conversation, websocket, voice, search, ingest). */
  channel: string;
  firstTokenMs?: number | null;
  /** The llm_usage outcome when it says more than the call outcome (answers: answered, no_sources, blocked). */
  result?: string;
}

/** Reports a finished call; adapters take one so that whoever built them decides who pays. */
export type ModelCallMeter = (call: Omit<ModelCall, "userId" | "channel" | "feature">) => void;

const warnedUnpriced = new Set<string>();

/** The cost of a call in US dollars from the price table; null (warned once per model) without a price. */
export function callCost(config: Pick<Config, "LLM_PRICES">, model: string, usage: ChatUsage): number | null {
  const cost = costUsd(priceFor(config, model), usage);
  if (cost !== undefined) return cost;
  if (!warnedUnpriced.has(model))
    log("warn", "no price for model: cost recorded as null; add it to LLM_PRICES", { model });
  warnedUnpriced.add(model);
  return null;
}

/** The llm_* metric events of one call. */
export function modelCallMetrics(call: ModelCall, cost: number | null): MetricEvent[] {
  const { feature, model } = call;
  return [
    { name: "llm_calls_total", labels: { feature, provider: call.provider, model, outcome: call.outcome }, value: 1 },
    { name: "llm_tokens_total", labels: { feature, model, kind: "prompt" }, value: call.usage.promptTokens },
    { name: "llm_tokens_total", labels: { feature, model, kind: "completion" }, value: call.usage.completionTokens },
    ...(cost ? [{ name: "llm_cost_usd_total", labels: { feature, model }, value: cost } as const] : []),
  ];
}

/**
 * A model call happened: its llm_* metrics, and for a paid provider an llm_usage row. The row is written
 * in `ctx.waitUntil` (inBackground without a ctx), never on the caller's path; metrics as recordMetrics does. The in-Worker providers cost
 * nothing and write no row: a search must not add a central round trip to count a free call.
 * Returns the call's cost. `extra` metric events ride in the same delivery (an answer's own metrics).
 */
export async function recordModelCall(
  config: Config,
  env: Env,
  ctx: Pick<ExecutionContext, "waitUntil"> | undefined,
  call: ModelCall,
  extra: MetricEvent[] = [],
): Promise<number | null> {
  const cost = callCost(config, call.model, call.usage);
  if (call.provider !== "local") (ctx ?? inBackground).waitUntil(insertUsage(config, { ...call, costUsd: cost }));
  await recordMetrics(env, ctx, ...extra, ...modelCallMetrics(call, cost));
  return cost;
}

/** Who pays for the calls a meter reports, and how they were reached. */
export interface Payer {
  feature: ModelFeature;
  userId: string | null;
  channel: string;
  conversationId?: string | null;
}

/** A meter that records every call it is told of for `payer`, in the background (ctx, else inBackground). */
export function meterFor(
  config: Config,
  env: Env,
  ctx: Pick<ExecutionContext, "waitUntil"> | undefined,
  payer: Payer,
): ModelCallMeter {
  return (call) => {
    recordModelCall(config, env, ctx ?? inBackground, { ...call, ...payer }).catch((error: unknown) =>
      log("error", "model call not recorded", { error: describeError(error), model: call.model }),
    );
  };
}
