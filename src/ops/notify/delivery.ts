import { ApiError } from "../../errors.ts";
import { log } from "../../observability/log.ts";
import { tracedFetch, traceHeaders } from "../../observability/outbound.ts";

// What one attempt to notify someone came to, and when to try again. The adapters (pagerduty.ts, webhook.ts)
// make exactly one attempt each call: the alert evaluator keeps the pending notification and retries it on a
// later run after nextAttemptDelayMs, so nothing here loops or keeps state.

/**
 * delivered: the receiver accepted it (2xx). retry: worth sending again later (408, 429, 5xx, network error,
 * timeout). rejected: sending the same thing again will fail the same way (400 and the other 4xx, a bad URL).
 * `reason` is short and safe to log: it never holds a routing key, a secret, a URL or a response body.
 */
export type Delivery =
  | { outcome: "delivered" }
  | { outcome: "retry"; reason: string }
  | { outcome: "rejected"; reason: string };

export interface DeliveryOptions {
  /** Abort the attempt after this long; default 5000 ms. */
  timeoutMs?: number;
  /** Replaces tracedFetch (trace headers are still added). */
  fetch?: typeof fetch;
}

export const DEFAULT_NOTIFY_TIMEOUT_MS = 5_000;

const FIRST_RETRY_MS = 30_000;
const MAX_RETRY_MS = 15 * 60_000;

/**
 * Delay before the next attempt after `attempt` failed ones (0 for the first failure): nominally 30 s, 1 min,
 * 2 min, 4 min ... capped at 15 min, with jitter taking it down to between 75 % and 100 % of the nominal delay
 * (so it never exceeds the cap and many alerts failing together spread out).
 */
export function nextAttemptDelayMs(attempt: number, random: () => number = Math.random): number {
  const n = Number.isFinite(attempt) && attempt > 0 ? Math.floor(attempt) : 0;
  const nominal = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(n, 30));
  return Math.round(nominal * (0.75 + 0.25 * random()));
}

/** 2xx delivered; 408, 429 and 5xx retry; anything else (400, 401, 404, 413, a redirect...) rejected. */
export function deliveryForStatus(status: number): Delivery {
  if (status >= 200 && status < 300) return { outcome: "delivered" };
  if (status === 408 || status === 429 || status >= 500) return { outcome: "retry", reason: `HTTP ${status}` };
  return { outcome: "rejected", reason: `HTTP ${status}` };
}

/**
 * One POST of a JSON text to `url`, classified. `channel` names the receiver in logs ("pagerduty", "webhook");
 * logs carry the channel, outcome and reason only, never the URL, headers or body.
 */
export async function postOnce(
  channel: string,
  url: string,
  body: string,
  headers: Record<string, string>,
  options: DeliveryOptions = {},
): Promise<Delivery> {
  const delivery = await attempt(channel, url, body, headers, options);
  if (delivery.outcome !== "delivered") {
    log("warn", "alert notification not delivered", { channel, outcome: delivery.outcome, reason: delivery.reason });
  }
  return delivery;
}

async function attempt(
  channel: string,
  url: string,
  body: string,
  headers: Record<string, string>,
  options: DeliveryOptions,
): Promise<Delivery> {
  if (!isHttpUrl(url)) return { outcome: "rejected", reason: "invalid URL" };
  const timeoutMs = options.timeoutMs ?? DEFAULT_NOTIFY_TIMEOUT_MS;
  const init: RequestInit = {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
    // A redirected POST may turn into a GET elsewhere: a redirect is an answer (rejected), not followed.
    redirect: "manual",
  };
  let response: Response;
  try {
    response = options.fetch
      ? await injectedFetch(options.fetch, url, init, timeoutMs)
      : await tracedFetch(url, { ...init, timeoutMs, retries: 0, service: channel });
  } catch (error) {
    if (error instanceof ApiError && error.code === "UPSTREAM_TIMEOUT") {
      return { outcome: "retry", reason: `timed out after ${timeoutMs} ms` };
    }
    if (error instanceof ApiError && error.code === "UPSTREAM_UNAVAILABLE") {
      return { outcome: "retry", reason: "connection failed" };
    }
    return { outcome: "retry", reason: `request failed (${error instanceof Error ? error.name : "unknown error"})` };
  }
  // The body is never read into a reason or a log line; it is drained so the connection can be reused.
  await response.body?.cancel().catch(() => undefined);
  return deliveryForStatus(response.status);
}

// The same contract as tracedFetch (trace headers, timeout, ApiError on failure) around a caller's fetch.
async function injectedFetch(
  fetchImpl: typeof fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(traceHeaders())) headers.set(name, value);
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    return await fetchImpl(url, { ...init, headers, signal: timeout });
  } catch (error) {
    if (timeout.aborted)
      throw new ApiError("UPSTREAM_TIMEOUT", `did not answer within ${timeoutMs} ms.`, { cause: error });
    throw new ApiError("UPSTREAM_UNAVAILABLE", "could not be reached.", { cause: error });
  }
}

function isHttpUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}
