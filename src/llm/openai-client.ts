import OpenAI, { APIConnectionTimeoutError, APIError } from "openai";
import type { Config } from "../config.ts";
import { UpstreamError } from "../errors.ts";
import { backoffMs, tracedFetch } from "../observability/outbound.ts";

// What the OpenAI adapters (embeddings, chat) share: the client, the error mapping and the retry rule.

export const DEFAULT_BASE_URL = "https://api.openai.com/v1";
// A longer Retry-After goes back to the caller: a queue can wait that long, a request should not.
export const MAX_RETRY_WAIT_MS = 10_000;

/** Names an adapter's calls in error messages. */
export interface OpenAiOperation {
  /** "embedding" or "chat": "OpenAI is rate limiting chat requests (429)." */
  kind: string;
  /** What a 5xx failed to do: "create embeddings". */
  action: string;
  /** The variable to check when OpenAI does not know the model. */
  modelVariable: "EMBEDDING_MODEL" | "CHAT_MODEL";
}

/** A client that never retries by itself (the adapters do, within their deadlines) and traces every call. */
export function openAiClient(config: Pick<Config, "OPENAI_API_KEY" | "OPENAI_BASE_URL">, timeoutMs: number): OpenAI {
  return new OpenAI({
    apiKey: config.OPENAI_API_KEY,
    // Explicit, or the SDK would read OPENAI_BASE_URL from process.env behind the config's back.
    baseURL: config.OPENAI_BASE_URL ?? DEFAULT_BASE_URL,
    maxRetries: 0,
    timeout: timeoutMs,
    // Trace headers on every call; tracedFetch's deadline is only a backstop behind the SDK's.
    fetch: (url, init) => tracedFetch(url, { ...init, service: "OpenAI", timeoutMs: timeoutMs + 1_000 }),
  });
}

/** How long to wait before trying again, or undefined when the failure goes back to the caller. */
export function retryDelayMs(
  failure: UpstreamError,
  attempt: number,
  maxRetries: number,
  maxWaitMs = MAX_RETRY_WAIT_MS,
): number | undefined {
  const wait = failure.retryAfterMs ?? backoffMs(attempt);
  return failure.transient && attempt < maxRetries && wait <= maxWaitMs ? wait : undefined;
}

/** Maps whatever the SDK threw to an UpstreamError naming OpenAI, transient or not. */
export function upstreamError(error: unknown, operation: OpenAiOperation, timeoutMs: number): UpstreamError {
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
    return new UpstreamError("UPSTREAM_UNAVAILABLE", `OpenAI is rate limiting ${operation.kind} requests (429).`, {
      transient: true,
      cause: error,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new UpstreamError("UPSTREAM_UNAVAILABLE", `OpenAI failed to ${operation.action} (${status}).`, {
      transient: true,
      cause: error,
    });
  }
  return new UpstreamError("UPSTREAM_UNAVAILABLE", permanentDetail(status, error, operation), {
    transient: false,
    cause: error,
  });
}

function permanentDetail(status: number, error: unknown, operation: OpenAiOperation): string {
  if (status === 401 || status === 403) return `OpenAI refused the API key (${status}): check OPENAI_API_KEY.`;
  if (status === 404) {
    return `OpenAI does not know the ${operation.kind} model (404): check ${operation.modelVariable}.`;
  }
  // The provider's own words say which input was wrong (e.g. too many tokens); never echoed for auth errors.
  const reason = error instanceof Error ? `: ${error.message.slice(0, 200)}` : "";
  return `OpenAI rejected the ${operation.kind} request (${status})${reason}`;
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
