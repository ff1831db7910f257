// One evaluation minute: burn rates from the ledger's windows, alert transitions, silences, escalation, and
// the deliveries owed. Synchronous over the alert book; sending happens after, in deliver.ts.
import type { Alert, AlertBook, Target } from "./alerts.ts";
import { dedupKeyOf } from "./alerts.ts";
import { type Counts, type PairReading, readPairs, type Severity, step } from "./burn-rate.ts";
import type { WindowCounts } from "./ledger.ts";
import type { Slo } from "./slos.ts";

/** Which notification channels are configured. */
export interface Routing {
  /** PagerDuty routing keys configured: the first one and each escalation level's. */
  pagerDutyLevels: number;
  webhook: boolean;
  escalateAfterMs: number;
}

/** Where an alert goes at an escalation level: pages to PagerDuty, tickets to the webhook, each falling back to the other. */
export function targetOf(severity: Severity, level: number, routing: Routing): Target | undefined {
  if (severity === "page") {
    if (level < routing.pagerDutyLevels) return { channel: "pagerduty", level };
    return routing.webhook ? { channel: "webhook", level } : undefined;
  }
  if (routing.webhook) return { channel: "webhook", level: 0 };
  return routing.pagerDutyLevels > 0 ? { channel: "pagerduty", level: 0 } : undefined;
}

export interface SloReading {
  slo: Slo;
  windows: ReadonlyMap<number, Counts>;
  pairs: PairReading[];
}

/** Each SLO's counts and pair readings from the ledger's windows. */
export const readSlos = (slos: readonly Slo[], windows: WindowCounts): SloReading[] =>
  slos.map((slo) => {
    const counts = windows.get(slo.id) ?? new Map<number, Counts>();
    return { slo, windows: counts, pairs: readPairs(counts, slo.objective) };
  });

const burnRatesOf = (pairs: readonly PairReading[]): Record<string, number> => {
  const rates: Record<string, number> = {};
  for (const { pair, long, short } of pairs) {
    rates[String(pair.longMinutes)] = long;
    rates[String(pair.shortMinutes)] = short;
  }
  return rates;
};

const silenced = (book: AlertBook, slo: string, now: number) =>
  book.silences(now).some((s) => s.slo === null || s.slo === slo);

function announce(book: AlertBook, alert: Alert, target: Target | undefined, now: number): void {
  if (!target) return;
  book.queue(alert.id, target.channel, target.level, "trigger", now);
  alert.sentTo.push(target);
}

/** Applies one minute of readings to the book: fires, resolves, announces after silences, escalates. */
export function evaluateMinute(book: AlertBook, readings: readonly SloReading[], routing: Routing, now: number): void {
  for (const { slo, pairs } of readings) {
    for (const severity of slo.severities) {
      const { state, transition } = step(book.burnState(slo.id, severity), severity, pairs);
      book.saveBurnState(slo.id, severity, state);
      if (transition === "fired" && !book.openFor(slo.id, severity)) {
        const alert: Alert = {
          id: crypto.randomUUID(),
          slo: slo.id,
          severity,
          dedupKey: dedupKeyOf(slo.id, severity),
          state: "firing",
          pair: state.firedBy ?? "",
          burnRates: burnRatesOf(pairs),
          firedAt: now,
          notifiedAt: null,
          acknowledgedAt: null,
          acknowledgedBy: null,
          resolvedAt: null,
          escalationLevel: 0,
          escalatedAt: null,
          sentTo: [],
        };
        if (!silenced(book, slo.id, now)) announce(book, alert, targetOf(severity, 0, routing), now);
        book.save(alert);
        book.recordEvent(alert, "fired", now, { pair: alert.pair, burn_rates: alert.burnRates });
      }
      if (transition === "resolved") {
        const alert = book.openFor(slo.id, severity);
        if (!alert) continue;
        alert.state = "resolved";
        alert.resolvedAt = now;
        for (const target of alert.sentTo) book.queue(alert.id, target.channel, target.level, "resolve", now);
        book.save(alert);
        book.recordEvent(alert, "resolved", now);
      }
    }
  }
  for (const alert of book.open()) {
    if (alert.sentTo.length === 0 && !silenced(book, alert.slo, now)) {
      announce(book, alert, targetOf(alert.severity, 0, routing), now);
      book.save(alert);
    } else if (escalationDue(alert, routing, now)) {
      const level = alert.escalationLevel + 1;
      const target = targetOf(alert.severity, level, routing);
      alert.escalationLevel = level;
      alert.escalatedAt = now;
      if (target && !alert.sentTo.some((t) => t.channel === target.channel && t.level === target.level)) {
        announce(book, alert, target, now);
      }
      book.save(alert);
      book.recordEvent(alert, "escalated", now, { level, channel: target?.channel });
    }
  }
  book.prune();
}

/** A page that was delivered and not acknowledged goes one level up every escalateAfterMs, while levels remain. */
function escalationDue(alert: Alert, routing: Routing, now: number): boolean {
  if (alert.severity !== "page" || alert.state !== "notified") return false;
  const since = alert.escalatedAt ?? alert.notifiedAt ?? alert.firedAt;
  const current = targetOf("page", alert.escalationLevel, routing);
  const next = targetOf("page", alert.escalationLevel + 1, routing);
  return now - since >= routing.escalateAfterMs && next !== undefined && current?.channel !== "webhook";
}

/** Acknowledges an open alert: escalation stops and every place that got its trigger hears of it. */
export function acknowledge(book: AlertBook, id: string, by: string, now: number): Alert | undefined {
  const alert = book.get(id);
  if (!alert || alert.state === "resolved" || alert.state === "acknowledged") return alert;
  alert.state = "acknowledged";
  alert.acknowledgedAt = now;
  alert.acknowledgedBy = by;
  for (const target of alert.sentTo) book.queue(alert.id, target.channel, target.level, "acknowledge", now);
  book.save(alert);
  book.recordEvent(alert, "acknowledged", now, { by });
  return alert;
}
