import { env } from "cloudflare:workers";
import type { Config } from "../../config.ts";
import { type ModelCallMeter, meterFor } from "../../costs/model-calls.ts";
import type { Env } from "../../env.ts";
import { localEmbedder } from "./local.ts";
import { openAiEmbedder } from "./openai.ts";
import type { Embedder } from "./port.ts";

/**
 * OpenAI (or a compatible base URL) when OPENAI_API_KEY is set, else the local hashed embedder. Its calls go
 * to `meter`; by default they are document embeddings for the index, paid by no particular user.
 */
export function createEmbedder(
  config: Config,
  meter: ModelCallMeter = meterFor(config, env as unknown as Env, undefined, {
    feature: "embeddings",
    userId: null,
    channel: "ingest",
  }),
): Embedder {
  return config.OPENAI_API_KEY ? openAiEmbedder(config, meter) : localEmbedder(meter);
}
