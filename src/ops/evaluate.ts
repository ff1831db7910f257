// One evaluation minute: burn rates from the ledger's windows and the cost conditions, alert transitions,
// silences, escalation, and the deliveries owed. Synchronous over the alert book; sending happens after, in deliver.ts.
import type { Alert, AlertBook, Target } from "./alerts.ts";
import { dedupKeyOf } from "./alerts.ts";
import type { Condition } from "./budgets.ts";
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

/**
 * Applies one minute to the book: SLO readings and cost conditions fire and resolve alerts; then announces
 * what silences no longer hold back, and escalates.
 */
export function evaluateMinute(
  book: AlertBook,
  readings: readonly SloReading[],
  routing: Routing,
  now: number,
  conditions: readonly Condition[] = [],
): void {
  for (const { slo, pairs } of readings) {
    for (const severity of slo.severities) {
      const { state, transition } = step(book.burnState(slo.id, severity), severity, pairs);
      book.saveBurnState(slo.id, severity, state);
      if (transition === "fired") {
        const burnRates = burnRatesOf(pairs);
        fire(book, { slo: slo.id, severity, pair: state.firedBy ?? "", burnRates }, routing, now, {
          burn_rates: burnRates,
        });
      }
      if (transition === "resolved") resolve(book, slo.id, severity, now);
    }
  }
  for (const { id, severity, holds, summary, facts } of conditions) {
    if (holds) fire(book, { slo: id, severity, pair: "", burnRates: {}, summary, facts }, routing, now, facts);
    else resolve(book, id, severity, now);
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

type Opening = Pick<Alert, "slo" | "severity" | "pair" | "burnRates" | "summary" | "facts">;

/** Opens an alert unless one is open for the same subject and severity; announced unless silenced. */
function fire(book: AlertBook, opening: Opening, routing: Routing, now: number, details: Record<string, unknown>) {
  if (book.openFor(opening.slo, opening.severity)) return;
  const alert: Alert = {
    ...opening,
    id: crypto.randomUUID(),
    dedupKey: dedupKeyOf(opening.slo, opening.severity),
    state: "firing",
    firedAt: now,
    notifiedAt: null,
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    escalationLevel: 0,
    escalatedAt: null,
    sentTo: [],
  };
  if (!silenced(book, alert.slo, now)) announce(book, alert, targetOf(alert.severity, 0, routing), now);
  book.save(alert);
  book.recordEvent(alert, "fired", now, { pair: alert.pair, ...details });
}

/** Resolves the open alert of a subject and severity, if any: every place that got its trigger hears of it. */
function resolve(book: AlertBook, subject: string, severity: Severity, now: number) {
  const alert = book.openFor(subject, severity);
  if (!alert) return;
  alert.state = "resolved";
  alert.resolvedAt = now;
  for (const target of alert.sentTo) book.queue(alert.id, target.channel, target.level, "resolve", now);
  book.save(alert);
  book.recordEvent(alert, "resolved", now);
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
