// Sends the deliveries the alert book owes, in order per alert: one attempt each per evaluation; a failed one
// waits for its backoff and is tried on a later minute (never dropped, except when the receiver refuses it).
import type { Config } from "../config.ts";
import type { Alert, AlertBook, QueuedDelivery } from "./alerts.ts";
import { costRunbook } from "./budgets.ts";
import { type Delivery, nextAttemptDelayMs } from "./notify/delivery.ts";
import { sendPagerDuty } from "./notify/pagerduty.ts";
import { sendWebhook } from "./notify/webhook.ts";
import { SLOS } from "./slos.ts";

export type Send = (delivery: QueuedDelivery, alert: Alert) => Promise<Delivery>;

export interface DeliveryReport {
  delivered: number;
  retrying: number;
  rejected: number;
}

export async function deliverDue(book: AlertBook, send: Send, now: number): Promise<DeliveryReport> {
  const report: DeliveryReport = { delivered: 0, retrying: 0, rejected: 0 };
  const waiting = new Set<string>();
  for (const delivery of book.deliveries()) {
    // A resolve must not overtake its own trigger still waiting for a retry.
    if (waiting.has(delivery.alertId) || delivery.nextAttemptAt > now) {
      waiting.add(delivery.alertId);
      continue;
    }
    const alert = book.get(delivery.alertId);
    const outcome = alert ? await send(delivery, alert) : ({ outcome: "rejected", reason: "alert pruned" } as const);
    if (outcome.outcome === "retry") {
      book.postpone(delivery.id, delivery.attempts + 1, now + nextAttemptDelayMs(delivery.attempts));
      waiting.add(delivery.alertId);
      report.retrying++;
      continue;
    }
    book.delivered(delivery.id);
    if (outcome.outcome === "rejected") {
      report.rejected++;
      continue;
    }
    report.delivered++;
    // Read again: an acknowledgement may have landed while the request was out.
    const current = book.get(delivery.alertId);
    if (current && delivery.action === "trigger" && current.state === "firing") {
      current.state = "notified";
      current.notifiedAt = now;
      book.save(current);
      book.recordEvent(current, "notified", now, { channel: delivery.channel, level: delivery.level });
    }
  }
  return report;
}

/** The runbook heading of an alert's subject: its SLO's, or a cost condition's. */
export const runbookUrl = (subject: string) =>
  `docs/runbooks/slos.md#${SLOS.find((s) => s.id === subject)?.runbook ?? costRunbook(subject) ?? subject}`;

const summaryOf = (alert: Alert) => alert.summary ?? `SLO ${alert.slo} is burning its error budget (${alert.pair})`;

const WEBHOOK_TYPES = { trigger: "alert.fired", acknowledge: "alert.acknowledged", resolve: "alert.resolved" } as const;

/** Sends a delivery with the configured PagerDuty routing keys and webhook. */
export function sendWith(config: Config): Send {
  const routingKeys = [config.PAGERDUTY_ROUTING_KEY, ...config.ALERT_ESCALATION_ROUTING_KEYS].filter(
    (key): key is string => Boolean(key),
  );
  return async (delivery, alert) => {
    const slo = SLOS.find((s) => s.id === alert.slo);
    const details = {
      slo: alert.slo,
      description: slo?.description ?? alert.summary,
      pair: alert.pair,
      burn_rates: alert.burnRates,
      ...(alert.facts ? { facts: alert.facts } : {}),
      runbook_url: runbookUrl(alert.slo),
      fired_at: new Date(alert.firedAt).toISOString(),
      escalation_level: delivery.level,
    };
    if (delivery.channel === "pagerduty") {
      const routingKey = routingKeys[delivery.level];
      if (!routingKey) return { outcome: "rejected", reason: "no routing key for this level" };
      return sendPagerDuty(
        { eventsUrl: config.PAGERDUTY_EVENTS_URL, routingKey },
        {
          action: delivery.action,
          dedupKey: alert.dedupKey,
          summary: `${alert.severity === "page" ? "Page" : "Ticket"}: ${summaryOf(alert)}`,
          source: `voiceassist-edge ${config.ENVIRONMENT}`,
          severity: alert.severity === "page" ? "critical" : "warning",
          customDetails: details,
        },
      );
    }
    if (!config.ALERT_WEBHOOK_URL) return { outcome: "rejected", reason: "no webhook configured" };
    const type =
      delivery.action === "trigger" && delivery.level > 0 ? "alert.escalated" : WEBHOOK_TYPES[delivery.action];
    const { sentTo: _, ...shown } = alert;
    return sendWebhook(
      { url: config.ALERT_WEBHOOK_URL, secret: config.ALERT_WEBHOOK_SECRET },
      { type, alert: shown, ...details },
    );
  };
}
