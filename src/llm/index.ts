import type { Config } from "../config.ts";
import { localComposer } from "./local-composer.ts";
import { openAiChatModel } from "./openai-chat.ts";
import type { ChatModel } from "./port.ts";

/** OpenAI (or a compatible base URL) when OPENAI_API_KEY is set, else the local extractive composer. */
export function createChatModel(config: Config): ChatModel {
  return config.OPENAI_API_KEY ? openAiChatModel(config) : localComposer();
}
