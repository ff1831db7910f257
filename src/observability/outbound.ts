import { ApiError } from "../errors.ts";
import { sleep } from "../sleep.ts";
import { currentWorkContext } from "./context.ts";
import { childTrace, formatTraceparent, newSpanId, newTraceId, type TraceContext } from "./trace.ts";

// The one place that stamps trace context onto everything leaving the Worker.

const DEFAULT_OUTBOUND_TIMEOUT_MS = 10_000;
let defaultTimeoutMs = DEFAULT_OUTBOUND_TIMEOUT_MS;

/** Set from config once per isolate (OUTBOUND_TIMEOUT_MS). */
export function setDefaultOutboundTimeout(ms: number): void {
  defaultTimeoutMs = ms;
}

/** Headers that carry the current trace to a downstream service (a fresh child span each call). */
export function traceHeaders(trace: TraceContext | undefined = currentWorkContext()?.trace): Record<string, string> {
  const context = currentWorkContext();
  if (!trace) return {};
  const child = childTrace(trace);
  return {
    traceparent: formatTraceparent(child),
    ...(child.tracestate ? { tracestate: child.tracestate } : {}),
    ...(context ? { "x-request-id": context.requestId } : {}),
  };
}

interface OutboundInit extends RequestInit {
  /** Abort after this long (default OUTBOUND_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Extra attempts after a network error, 429 or 5xx; only for idempotent calls. Default 0. */
  retries?: number;
  /** Names the service in errors ("OpenAI", "Upstash"...). */
  service?: string;
}

const retryable = (status: number) => status === 429 || status >= 500;

/**
 * fetch with trace headers, a timeout and bounded retries. Failures become ApiErrors
 * (UPSTREAM_TIMEOUT / UPSTREAM_UNAVAILABLE) that name the service but never its internals.
 */
export async function tracedFetch(input: string | URL | Request, init: OutboundInit = {}): Promise<Response> {
  const { timeoutMs = defaultTimeoutMs, retries = 0, service = "upstream", ...requestInit } = init;
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(requestInit.headers ?? (input instanceof Request ? input.headers : undefined));
    for (const [name, value] of Object.entries(traceHeaders())) headers.set(name, value);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = requestInit.signal ? AbortSignal.any([requestInit.signal, timeout]) : timeout;
    try {
      const response = await fetch(input, { ...requestInit, headers, signal });
      if (attempt < retries && retryable(response.status)) {
        await response.body?.cancel();
        await sleep(backoffMs(attempt));
        continue;
      }
      return response;
    } catch (error) {
      if (requestInit.signal?.aborted) throw error;
      if (attempt < retries) {
        await sleep(backoffMs(attempt));
        continue;
      }
      if (timeout.aborted) {
        throw new ApiError("UPSTREAM_TIMEOUT", `${service} did not answer within ${timeoutMs} ms.`, { cause: error });
      }
      throw new ApiError("UPSTREAM_UNAVAILABLE", `${service} could not be reached.`, { cause: error });
    }
  }
}

/** Exponential backoff with full jitter: 100 ms, 200 ms, 400 ms ... capped at 2 s. */
export const backoffMs = (attempt: number) => Math.random() * Math.min(2_000, 100 * 2 ** attempt);

/** Every queue message travels in this envelope so the consumer continues the producer's trace. */
export interface QueueEnvelope<T = unknown> {
  type: string;
  payload: T;
  traceparent: string;
  tracestate?: string;
  requestId?: string;
  enqueuedAt: string;
}

export function envelope<T>(type: string, payload: T): QueueEnvelope<T> {
  const context = currentWorkContext();
  const trace = context?.trace ?? { traceId: newTraceId(), spanId: newSpanId(), sampled: true };
  const headers = traceHeaders(trace);
  return {
    type,
    payload,
    traceparent: headers.traceparent as string,
    ...(headers.tracestate ? { tracestate: headers.tracestate } : {}),
    ...(context ? { requestId: context.requestId } : {}),
    enqueuedAt: new Date().toISOString(),
  };
}

/** Sends one message, stamped with the current trace. */
export async function enqueue<T>(queue: Queue<unknown>, type: string, payload: T): Promise<void> {
  await queue.send(envelope(type, payload), { contentType: "json" });
}
