import { type Delivery, type DeliveryOptions, postOnce } from "./delivery.ts";
import { signatureHeader, WEBHOOK_SIGNATURE_HEADER } from "./signature.ts";

// The alert webhook (ALERT_WEBHOOK_URL): a JSON body, signed as Stripe signs its webhooks when a secret
// (ALERT_WEBHOOK_SECRET) is set:
//   VoiceAssist-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
// A receiver recomputes the HMAC over the raw body it got and refuses a timestamp older than its tolerance
// (verifyWebhookSignature in signature.ts), which stops replays of a captured request.

export interface WebhookTarget {
  url: string;
  /** Signs the body when set; never logged or returned. */
  secret: string | undefined;
}

export interface WebhookOptions extends DeliveryOptions {
  /** The signature's timestamp (default: now). */
  nowSeconds?: number;
}

/**
 * Posts `body` as JSON, once. 2xx delivered; 408, 429, 5xx, network errors and timeouts retry;
 * other 4xx (and redirects) rejected.
 */
export async function sendWebhook(
  target: WebhookTarget,
  body: unknown,
  options: WebhookOptions = {},
): Promise<Delivery> {
  const { nowSeconds, ...deliveryOptions } = options;
  const raw = JSON.stringify(body) ?? "null";
  const headers: Record<string, string> = {};
  if (target.secret) {
    const t = Math.floor(nowSeconds ?? Date.now() / 1000);
    headers[WEBHOOK_SIGNATURE_HEADER] = await signatureHeader(target.secret, t, raw);
  }
  return postOnce("webhook", target.url, raw, headers, deliveryOptions);
}
