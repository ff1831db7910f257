import type { Config, ModelPrice } from "../config.ts";
import type { ChatUsage } from "./port.ts";

/**
 * Built-in prices in US dollars per 1M tokens (input, output): OpenAI standard-tier list prices as
 * published since April 2025, written into this table on 2026-11-26. LLM_PRICES overrides or extends it.
 */
export const BUILT_IN_PRICES: Readonly<Record<string, ModelPrice>> = {
  "gpt-4o-mini": { input: 0.15, output: 0.6 },
  "gpt-4o": { input: 2.5, output: 10 },
  "gpt-4.1": { input: 2, output: 8 },
  "gpt-4.1-mini": { input: 0.4, output: 1.6 },
  "gpt-4.1-nano": { input: 0.1, output: 0.4 },
  "o4-mini": { input: 1.1, output: 4.4 },
  "text-embedding-3-small": { input: 0.02, output: 0 },
  "text-embedding-3-large": { input: 0.13, output: 0 },
  // Realtime voice is mostly audio: priced at its audio rates (text tokens cost less, so this errs high).
  "gpt-realtime": { input: 32, output: 64 },
  // The in-Worker providers cost nothing per call.
  "local-extractive-v1": { input: 0, output: 0 },
  "local-hash-v1": { input: 0, output: 0 },
};

// OpenAI reports the dated snapshot it served ("gpt-4o-mini-2024-07-18"), priced as its base model.
const SNAPSHOT_SUFFIX = /-\d{4}-\d{2}-\d{2}$/;

/** The price of a model: a configured entry first, then the built-in table; by exact name, then base name. */
export function priceFor(config: Pick<Config, "LLM_PRICES">, model: string): ModelPrice | undefined {
  // A Map, so names like "constructor" cannot reach Object.prototype.
  const table = new Map(Object.entries({ ...BUILT_IN_PRICES, ...config.LLM_PRICES }));
  return table.get(model) ?? table.get(model.replace(SNAPSHOT_SUFFIX, ""));
}

/** The cost of one call in US dollars, rounded to 1e-8; undefined when the model has no price. */
export function costUsd(price: ModelPrice | undefined, usage: ChatUsage): number | undefined {
  if (!price) return undefined;
  const dollars = (usage.promptTokens * price.input + usage.completionTokens * price.output) / 1_000_000;
  return Math.round(dollars * 1e8) / 1e8;
}

/** Whether a model is known to cost nothing (the in-Worker providers, or a self-hosted model priced 0/0). */
export function isFreeModel(config: Pick<Config, "LLM_PRICES">, model: string): boolean {
  const price = priceFor(config, model);
  return price !== undefined && price.input === 0 && price.output === 0;
}
