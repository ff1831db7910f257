import type OpenAI from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import type { Config } from "../config.ts";
import { UpstreamError } from "../errors.ts";
import { estimateTokens } from "../kb/chunk.ts";
import { type CallOutcome, circuitBreakerFor } from "./circuit-breaker.ts";
import { MAX_RETRY_WAIT_MS, type OpenAiOperation, openAiClient, retryDelayMs, upstreamError } from "./openai-client.ts";
import type { ChatChunk, ChatModel, ChatRequest, ChatUsage } from "./port.ts";

export type OpenAiChatConfig = Pick<
  Config,
  | "OPENAI_API_KEY"
  | "OPENAI_BASE_URL"
  | "CHAT_MODEL"
  | "CHAT_TIMEOUT_MS"
  | "CHAT_FIRST_TOKEN_TIMEOUT_MS"
  | "CHAT_MAX_RETRIES"
  | "CHAT_CIRCUIT_FAILURES"
  | "CHAT_CIRCUIT_COOLDOWN_SECONDS"
>;

const CHAT: OpenAiOperation = { kind: "chat", action: "answer the chat request", modelVariable: "CHAT_MODEL" };

/**
 * Streamed answers from OpenAI (or any OpenAI-compatible base URL) with a first-token and a whole-answer
 * deadline, bounded retries before the first delta only, and a circuit breaker per model.
 * When request.signal aborts, the upstream request is aborted at once and the stream ends quietly,
 * without a usage chunk: the caller knows it cancelled.
 */
export function openAiChatModel(config: OpenAiChatConfig): ChatModel {
  const model = config.CHAT_MODEL;
  const client = openAiClient(config, config.CHAT_TIMEOUT_MS);
  // OpenAI's reasoning models refuse max_tokens; many compatible servers know only max_tokens.
  const tokenLimit = new URL(client.baseURL).hostname === "api.openai.com" ? "max_completion_tokens" : "max_tokens";
  const breaker = circuitBreakerFor(`openai:${model}`, {
    failures: config.CHAT_CIRCUIT_FAILURES,
    cooldownMs: config.CHAT_CIRCUIT_COOLDOWN_SECONDS * 1000,
  });

  return {
    provider: "openai",
    model,
    async *stream(request) {
      const pausedMs = breaker.acquire();
      if (pausedMs !== undefined) {
        throw new UpstreamError(
          "UPSTREAM_UNAVAILABLE",
          `The chat model is failing; calls are paused for ${Math.ceil(pausedMs / 1000)} s (circuit open).`,
          { transient: true, retryAfterMs: pausedMs },
        );
      }
      const call = answerDeadlines(config, request.signal);
      let outcome: CallOutcome = "no-verdict";
      try {
        const params = { model, messages: request.messages, [tokenLimit]: request.maxOutputTokens };
        if (yield* answer(client, params, request, call, config)) outcome = "success";
      } catch (error) {
        // A 400 or 401 says nothing about the upstream's health; timeouts, 429s and 5xx do.
        if (error instanceof UpstreamError && error.transient) outcome = "failure";
        throw error;
      } finally {
        call.dispose();
        breaker.record(outcome);
      }
    },
  };
}

type ChatParams = Pick<OpenAI.ChatCompletionCreateParams, "model" | "messages"> & Record<string, unknown>;

/** One answer with its retries; true when it completed, false when the caller cancelled it. */
async function* answer(
  client: OpenAI,
  params: ChatParams,
  request: ChatRequest,
  call: AnswerDeadlines,
  config: OpenAiChatConfig,
): AsyncGenerator<ChatChunk, boolean> {
  let yielded = false;
  for (let attempt = 0; ; attempt++) {
    let error: unknown;
    let finished = false;
    let usage: ChatUsage | undefined;
    let answered = "";
    try {
      const stream = await client.chat.completions.create(
        { ...params, stream: true, stream_options: { include_usage: true } },
        { signal: call.signal },
      );
      // The SDK ends the loop quietly when call.signal aborts: call.stopped says why.
      for await (const chunk of stream) {
        const { choices, usage: reported } = (chunk ?? {}) as Partial<ChatCompletionChunk>;
        if (reported) usage = { promptTokens: reported.prompt_tokens, completionTokens: reported.completion_tokens };
        else if (!Array.isArray(choices)) throw malformed("a chunk has no choices");
        const choice = choices?.[0];
        if (choice?.finish_reason) finished = true;
        const text = choice?.delta?.content;
        if (!text) continue;
        call.firstTokenArrived();
        yielded = true;
        answered += text;
        yield { type: "delta", text };
      }
      if (!call.stopped && !finished) throw malformed("it ended before the answer was finished");
    } catch (thrown) {
      error = thrown;
    }
    if (call.stopped === "cancelled") return false;
    if (call.stopped) throw call.timeout();
    if (error === undefined) {
      // Servers that ignore stream_options send no usage: estimate it as the rest of the app does.
      yield {
        type: "usage",
        usage: usage ?? {
          promptTokens: estimateTokens(request.messages.map((m) => m.content).join("\n")),
          completionTokens: estimateTokens(answered),
        },
      };
      return true;
    }
    const failure =
      error instanceof SyntaxError
        ? malformed("a data line is not valid JSON")
        : upstreamError(error, CHAT, config.CHAT_TIMEOUT_MS);
    // Never again once text went out: the caller has shown it, and a second answer would differ.
    const maxWaitMs = Math.min(MAX_RETRY_WAIT_MS, call.firstTokenRemainingMs());
    const wait = yielded ? undefined : retryDelayMs(failure, attempt, config.CHAT_MAX_RETRIES, maxWaitMs);
    if (wait === undefined) throw failure;
    await pause(wait, call.signal);
  }
}

const malformed = (what: string) =>
  new UpstreamError("UPSTREAM_UNAVAILABLE", `OpenAI sent a malformed chat stream: ${what}.`, { transient: true });

type Stop = "cancelled" | "first-token" | "answer";
type AnswerDeadlines = ReturnType<typeof answerDeadlines>;

/** The caller's cancellation and both deadlines of one answer (retries included), as one signal for the SDK. */
function answerDeadlines(config: OpenAiChatConfig, caller: AbortSignal | undefined) {
  const controller = new AbortController();
  let stopped: Stop | undefined;
  const stop = (reason: Stop) => {
    stopped ??= reason;
    controller.abort();
  };
  const firstTokenBy = Date.now() + config.CHAT_FIRST_TOKEN_TIMEOUT_MS;
  const firstToken = setTimeout(() => stop("first-token"), config.CHAT_FIRST_TOKEN_TIMEOUT_MS);
  const whole = setTimeout(() => stop("answer"), config.CHAT_TIMEOUT_MS);
  const cancel = () => stop("cancelled");
  if (caller?.aborted) cancel();
  else caller?.addEventListener("abort", cancel, { once: true });
  return {
    signal: controller.signal,
    get stopped() {
      return stopped;
    },
    firstTokenArrived: () => clearTimeout(firstToken),
    firstTokenRemainingMs: () => firstTokenBy - Date.now(),
    timeout: () =>
      new UpstreamError(
        "UPSTREAM_TIMEOUT",
        stopped === "first-token"
          ? `OpenAI sent no answer within ${config.CHAT_FIRST_TOKEN_TIMEOUT_MS} ms (CHAT_FIRST_TOKEN_TIMEOUT_MS).`
          : `OpenAI did not finish the answer within ${config.CHAT_TIMEOUT_MS} ms (CHAT_TIMEOUT_MS).`,
        { transient: true },
      ),
    /** Releases the timers, the caller's listener and, if still open, the upstream request. */
    dispose() {
      clearTimeout(firstToken);
      clearTimeout(whole);
      caller?.removeEventListener("abort", cancel);
      controller.abort();
    },
  };
}

/** Waits, or less if the answer is stopped meanwhile. */
const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
