// The chat model port: OpenAI (or any OpenAI-compatible server) and the local extractive composer.

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** A retrieved passage as the model sees it: numbered from 1 in the prompt. */
export interface PromptSource {
  index: number;
  title: string;
  text: string;
  /** Headings above the passage, outermost first: what the passage is about, for the local composer. */
  headingPath?: string[];
}

export interface ChatRequest {
  /** The full prompt, in order: system policy with numbered sources, history, the question. */
  messages: ChatMessage[];
  /** The same sources, structured, for providers that compose rather than generate (the local composer). */
  sources: PromptSource[];
  question: string;
  maxOutputTokens: number;
  /** Aborted when the client goes away: the provider must stop and release the upstream call. */
  signal?: AbortSignal;
}

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
}

/** What a streaming call yields: text as it comes, then the usage once at the end. */
export type ChatChunk = { type: "delta"; text: string } | { type: "usage"; usage: ChatUsage };

export interface ChatModel {
  readonly provider: "openai" | "local";
  readonly model: string;
  /**
   * Streams one answer. Throws an UpstreamError (src/errors.ts) with a clear message on
   * timeout, rate limit, open circuit or a malformed stream; never hangs past its configured timeouts.
   */
  stream(request: ChatRequest): AsyncIterable<ChatChunk>;
}
