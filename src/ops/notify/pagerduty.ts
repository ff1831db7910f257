import { type Delivery, type DeliveryOptions, postOnce } from "./delivery.ts";

// PagerDuty Events API v2 (POST https://events.pagerduty.com/v2/enqueue): one event per call, one attempt.
// A trigger opens (or updates) the alert with this dedup_key; acknowledge and resolve act on the same key.

export const PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue";

/** PagerDuty's limits: a summary of at most 1024 characters (longer ones are cut), a dedup_key of at most 255. */
export const PAGERDUTY_SUMMARY_MAX = 1024;
export const PAGERDUTY_DEDUP_KEY_MAX = 255;

export interface PagerDutyTarget {
  /** The enqueue endpoint (PAGERDUTY_EVENTS_URL). */
  eventsUrl: string;
  /** The integration's routing key (PAGERDUTY_ROUTING_KEY): sent in the body only, never logged or returned. */
  routingKey: string;
}

export interface PagerDutyEvent {
  action: "trigger" | "acknowledge" | "resolve";
  dedupKey: string;
  /** Trigger only (as are source, severity and customDetails). */
  summary: string;
  source: string;
  severity: "critical" | "warning";
  customDetails?: Record<string, unknown>;
}

/** The body PagerDuty receives: the payload on a trigger only. */
export function pagerDutyBody(routingKey: string, event: PagerDutyEvent): Record<string, unknown> {
  const base = { routing_key: routingKey, event_action: event.action, dedup_key: event.dedupKey };
  if (event.action !== "trigger") return base;
  return {
    ...base,
    payload: {
      summary: truncate(event.summary, PAGERDUTY_SUMMARY_MAX),
      source: event.source,
      severity: event.severity,
      ...(event.customDetails ? { custom_details: event.customDetails } : {}),
    },
  };
}

/**
 * Sends one event. 2xx (PagerDuty answers 202) delivered; 400 rejected (an invalid event stays invalid);
 * 408, 429, 5xx, network errors and timeouts retry; other statuses rejected.
 */
export async function sendPagerDuty(
  target: PagerDutyTarget,
  event: PagerDutyEvent,
  options: DeliveryOptions = {},
): Promise<Delivery> {
  if (!target.routingKey) return { outcome: "rejected", reason: "no routing key" };
  if (!event.dedupKey || event.dedupKey.length > PAGERDUTY_DEDUP_KEY_MAX) {
    return { outcome: "rejected", reason: `dedup key must be 1 to ${PAGERDUTY_DEDUP_KEY_MAX} characters` };
  }
  const body = JSON.stringify(pagerDutyBody(target.routingKey, event));
  return postOnce("pagerduty", target.eventsUrl, body, { accept: "application/json" }, options);
}

// Cuts to max UTF-16 units, ending in "…", without splitting a surrogate pair.
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}
