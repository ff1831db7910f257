import type { Config } from "../../config.ts";
import type { ModelCallMeter } from "../../costs/model-calls.ts";
import { ApiError, UpstreamError } from "../../errors.ts";
import { type OpenAiOperation, openAiClient, retryDelayMs, upstreamError } from "../../llm/openai-client.ts";
import type { Embedder } from "./port.ts";

const MAX_RETRIES = 3;
const EMBEDDINGS: OpenAiOperation = {
  kind: "embedding",
  action: "create embeddings",
  modelVariable: "EMBEDDING_MODEL",
};

/** Output sizes of the models we know; an index must know its dimension before the first call. */
const OPENAI_EMBEDDING_DIMENSIONS: Readonly<Record<string, number>> = {
  "text-embedding-3-small": 1536,
  "text-embedding-3-large": 3072,
  "text-embedding-ada-002": 1536,
};

export type OpenAiEmbeddingConfig = Pick<
  Config,
  | "OPENAI_API_KEY"
  | "OPENAI_BASE_URL"
  | "EMBEDDING_MODEL"
  | "EMBEDDING_DIMENSIONS"
  | "EMBEDDING_BATCH_SIZE"
  | "EMBEDDING_TIMEOUT_MS"
>;

/**
 * Embeddings from OpenAI (or any OpenAI-compatible base URL), batched, each batch retried a bounded number of
 * times. Each embed() is reported to `meter` once, with the tokens the server counted (docs/costs.md).
 */
export function openAiEmbedder(config: OpenAiEmbeddingConfig, meter?: ModelCallMeter): Embedder {
  const model = config.EMBEDDING_MODEL;
  // EMBEDDING_DIMENSIONS serves other OpenAI-compatible models and shortened text-embedding-3 vectors.
  const requested = config.EMBEDDING_DIMENSIONS;
  const dimensions = requested ?? OPENAI_EMBEDDING_DIMENSIONS[model];
  if (!dimensions) {
    throw new ApiError(
      "BAD_ENVIRONMENT",
      `EMBEDDING_MODEL ${model} has no known dimension; set EMBEDDING_DIMENSIONS or use one of ${Object.keys(OPENAI_EMBEDDING_DIMENSIONS).join(", ")}.`,
    );
  }
  const timeoutMs = config.EMBEDDING_TIMEOUT_MS;
  const client = openAiClient(config, timeoutMs);

  const embedBatch = async (input: string[], used: { tokens: number }): Promise<number[][]> => {
    for (let attempt = 0; ; attempt++) {
      try {
        // The SDK asks for base64 and decodes it into number[].
        const response = await client.embeddings.create({
          model,
          input,
          ...(requested ? { dimensions: requested } : {}),
        });
        used.tokens += response.usage?.prompt_tokens ?? 0;
        return inputOrder(response.data, input.length, dimensions);
      } catch (error) {
        const failure = upstreamError(error, EMBEDDINGS, timeoutMs);
        const wait = retryDelayMs(failure, attempt, MAX_RETRIES);
        if (wait === undefined) throw failure;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  };

  return {
    model,
    dimensions,
    async embed(texts) {
      const started = Date.now();
      const used = { tokens: 0 };
      const report = (outcome: "ok" | "timeout" | "error") =>
        meter?.({
          provider: "openai",
          model,
          outcome,
          usage: { promptTokens: used.tokens, completionTokens: 0 },
          latencyMs: Date.now() - started,
        });
      const vectors: number[][] = [];
      try {
        for (let i = 0; i < texts.length; i += config.EMBEDDING_BATCH_SIZE) {
          vectors.push(...(await embedBatch(texts.slice(i, i + config.EMBEDDING_BATCH_SIZE), used)));
        }
      } catch (error) {
        // Batches that succeeded before the failure were billed all the same.
        report(error instanceof ApiError && error.code === "UPSTREAM_TIMEOUT" ? "timeout" : "error");
        throw error;
      }
      report("ok");
      return vectors;
    },
  };
}

function inputOrder(data: { index: number; embedding: number[] }[], count: number, dimensions: number): number[][] {
  const vectors: number[][] = new Array(count);
  for (const item of data) vectors[item.index] = item.embedding;
  for (let i = 0; i < count; i++) {
    const vector = vectors[i];
    if (!vector) {
      throw new UpstreamError("UPSTREAM_UNAVAILABLE", `OpenAI returned no embedding for input ${i}.`, {
        transient: true,
      });
    }
    if (vector.length !== dimensions) {
      throw new ApiError(
        "BAD_ENVIRONMENT",
        `OpenAI returned ${vector.length}-dimensional embeddings where ${dimensions} were expected: check EMBEDDING_MODEL and OPENAI_BASE_URL.`,
      );
    }
  }
  return vectors;
}
