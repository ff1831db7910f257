import type { Config } from "../../config.ts";
import { localEmbedder } from "./local.ts";
import { openAiEmbedder } from "./openai.ts";
import type { Embedder } from "./port.ts";

/** OpenAI (or a compatible base URL) when OPENAI_API_KEY is set, else the local hashed embedder. */
export function createEmbedder(config: Config): Embedder {
  return config.OPENAI_API_KEY ? openAiEmbedder(config) : localEmbedder();
}
