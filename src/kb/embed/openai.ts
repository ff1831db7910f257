import OpenAI, { APIConnectionTimeoutError, APIError } from "openai";
import type { Config } from "../../config.ts";
import { ApiError } from "../../errors.ts";
import { backoffMs, tracedFetch } from "../../observability/outbound.ts";
import { UpstreamError } from "./errors.ts";
import type { Embedder } from "./port.ts";

const DEFAULT_BASE_URL = "https://api.openai.com/v1";
const MAX_RETRIES = 3;
// A longer Retry-After goes back to the caller: a queue can wait that long, a request should not.
const MAX_RETRY_WAIT_MS = 10_000;

/** Output sizes of the models we know; an index must know its dimension before the first call. */
export const OPENAI_EMBEDDING_DIMENSIONS: Readonly<Record<string, number>> = {
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

/** Embeddings from OpenAI (or any OpenAI-compatible base URL), batched, each batch retried a bounded number of times. */
export function openAiEmbedder(config: OpenAiEmbeddingConfig): Embedder {
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
  const client = new OpenAI({
    apiKey: config.OPENAI_API_KEY,
    // Explicit, or the SDK would read OPENAI_BASE_URL from process.env behind the config's back.
    baseURL: config.OPENAI_BASE_URL ?? DEFAULT_BASE_URL,
    maxRetries: 0,
    timeout: timeoutMs,
    // Trace headers on every call; tracedFetch's deadline is only a backstop behind the SDK's.
    fetch: (url, init) => tracedFetch(url, { ...init, service: "OpenAI", timeoutMs: timeoutMs + 1_000 }),
  });

  const embedBatch = async (input: string[]): Promise<number[][]> => {
    for (let attempt = 0; ; attempt++) {
      try {
        // The SDK asks for base64 and decodes it into number[].
        const response = await client.embeddings.create({
          model,
          input,
          ...(requested ? { dimensions: requested } : {}),
        });
        return inputOrder(response.data, input.length, dimensions);
      } catch (error) {
        const failure = upstreamError(error, timeoutMs);
        const wait = failure.retryAfterMs ?? backoffMs(attempt);
        if (!failure.transient || attempt >= MAX_RETRIES || wait > MAX_RETRY_WAIT_MS) throw failure;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  };

  return {
    model,
    dimensions,
    async embed(texts) {
      const vectors: number[][] = [];
      for (let i = 0; i < texts.length; i += config.EMBEDDING_BATCH_SIZE) {
        vectors.push(...(await embedBatch(texts.slice(i, i + config.EMBEDDING_BATCH_SIZE))));
      }
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

/** Maps whatever the SDK threw to an UpstreamError naming OpenAI, transient or not. */
function upstreamError(error: unknown, timeoutMs: number): UpstreamError {
  if (error instanceof UpstreamError) return error;
  if (error instanceof APIConnectionTimeoutError) {
    return new UpstreamError("UPSTREAM_TIMEOUT", `OpenAI did not answer within ${timeoutMs} ms.`, {
      transient: true,
      cause: error,
    });
  }
  const status = error instanceof APIError ? error.status : undefined;
  if (status === undefined) {
    return new UpstreamError("UPSTREAM_UNAVAILABLE", "OpenAI could not be reached.", { transient: true, cause: error });
  }
  const retryAfterMs = error instanceof APIError ? retryAfter(error.headers) : undefined;
  if (status === 429) {
    return new UpstreamError("UPSTREAM_UNAVAILABLE", "OpenAI is rate limiting embedding requests (429).", {
      transient: true,
      cause: error,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new UpstreamError("UPSTREAM_UNAVAILABLE", `OpenAI failed to create embeddings (${status}).`, {
      transient: true,
      cause: error,
    });
  }
  return new UpstreamError("UPSTREAM_UNAVAILABLE", permanentDetail(status, error), { transient: false, cause: error });
}

function permanentDetail(status: number, error: unknown): string {
  if (status === 401 || status === 403) return `OpenAI refused the API key (${status}): check OPENAI_API_KEY.`;
  if (status === 404) return `OpenAI does not know the embedding model (404): check EMBEDDING_MODEL.`;
  // The provider's own words say which input was wrong (e.g. too many tokens); never echoed for auth errors.
  const reason = error instanceof Error ? `: ${error.message.slice(0, 200)}` : "";
  return `OpenAI rejected the embedding request (${status})${reason}`;
}

/** Retry-After-Ms, or Retry-After in seconds or as an HTTP date. */
function retryAfter(headers: Headers | undefined): number | undefined {
  const ms = Number.parseFloat(headers?.get("retry-after-ms") ?? "");
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers?.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}
