// The alert book: alerts, silences, the burn state of each SLO and severity, and the deliveries still owed
// to PagerDuty or the webhook, in the SQLite storage of the AlertManager Durable Object. Nothing here reads
// Postgres or Redis: the outage an alert is about is often one of those.
import type { Severity, SeverityState } from "./burn-rate.ts";
import { CALM } from "./burn-rate.ts";
import type { Sql } from "./sql.ts";

export type AlertState = "firing" | "notified" | "acknowledged" | "resolved";
export type Channel = "pagerduty" | "webhook";
export type DeliveryAction = "trigger" | "acknowledge" | "resolve";

export interface Alert {
  id: string;
  /** What it is about: an SLO id, or a cost condition's id (budgets.ts). */
  slo: string;
  severity: Severity;
  /** One per SLO and severity: PagerDuty folds every trigger with it into one incident. */
  dedupKey: string;
  state: AlertState;
  /** The burn-rate pair that fired it, e.g. "1h-5m". */
  pair: string;
  /** Burn rates by window (minutes) when it fired. */
  burnRates: Record<string, number>;
  firedAt: number;
  notifiedAt: number | null;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  resolvedAt: number | null;
  /** 0 until an unacknowledged page is escalated; then the level it was last sent to. */
  escalationLevel: number;
  escalatedAt: number | null;
  /** Where triggers were queued (none while silenced): acknowledgements and resolves go to the same places. */
  sentTo: Target[];
  /** A cost alert's own summary and figures (budgets.ts); an SLO alert's are derived from the SLO. */
  summary?: string;
  facts?: Record<string, number | string>;
}

/** Where a notification goes: PagerDuty at an escalation level (which routing key), or the webhook. */
export interface Target {
  channel: Channel;
  level: number;
}

export interface Silence {
  id: string;
  /** null silences every SLO. */
  slo: string | null;
  until: number;
  reason: string;
  createdBy: string;
  createdAt: number;
}

export interface QueuedDelivery {
  id: number;
  alertId: string;
  channel: Channel;
  /** Escalation level: which routing key a PagerDuty delivery uses. */
  level: number;
  action: DeliveryAction;
  attempts: number;
  nextAttemptAt: number;
}

/** Resolved alerts kept for the admin API: the newest this many. */
const KEPT_RESOLVED = 500;
/** History events waiting for Postgres: past this many (a long outage), the oldest are dropped. */
const MAX_PENDING_HISTORY = 10_000;

export type AlertEventName = "fired" | "notified" | "acknowledged" | "escalated" | "resolved";

/** One step of an alert's life, waiting to be copied to Postgres (alert_events). */
export interface AlertEvent {
  id: string;
  alertId: string;
  slo: string;
  severity: Severity;
  event: AlertEventName;
  at: number;
  details: Record<string, unknown>;
}

export const dedupKeyOf = (slo: string, severity: Severity) => `voiceassist/${slo}/${severity}`;

type Row = Record<string, unknown>;

export class AlertBook {
  private readonly sql: Sql;

  constructor(sql: Sql) {
    this.sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS burn_state (slo TEXT, severity TEXT, body TEXT NOT NULL, PRIMARY KEY (slo, severity))
    `);
    sql.exec(`CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, open INTEGER NOT NULL, fired_at INTEGER NOT NULL, body TEXT NOT NULL)
    `);
    sql.exec("CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (open, fired_at)");
    sql.exec(`CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, until INTEGER NOT NULL, body TEXT NOT NULL)`);
    sql.exec("CREATE TABLE IF NOT EXISTS history (id TEXT PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)");
    sql.exec(`CREATE TABLE IF NOT EXISTS deliveries (
      id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, channel TEXT NOT NULL, level INTEGER NOT NULL,
      action TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL)`);
  }

  burnState(slo: string, severity: Severity): SeverityState {
    const row = this.sql.exec("SELECT body FROM burn_state WHERE slo = ? AND severity = ?", slo, severity).toArray()[0];
    return row ? (JSON.parse(String(row.body)) as SeverityState) : CALM;
  }

  saveBurnState(slo: string, severity: Severity, state: SeverityState): void {
    this.sql.exec(
      "INSERT INTO burn_state (slo, severity, body) VALUES (?, ?, ?) ON CONFLICT (slo, severity) DO UPDATE SET body = excluded.body",
      slo,
      severity,
      JSON.stringify(state),
    );
  }

  save(alert: Alert): void {
    this.sql.exec(
      "INSERT INTO alerts (id, open, fired_at, body) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET open = excluded.open, body = excluded.body",
      alert.id,
      alert.state === "resolved" ? 0 : 1,
      alert.firedAt,
      JSON.stringify(alert),
    );
  }

  get(id: string): Alert | undefined {
    const row = this.sql.exec("SELECT body FROM alerts WHERE id = ?", id).toArray()[0];
    return row ? (JSON.parse(String(row.body)) as Alert) : undefined;
  }

  /** Open alerts, oldest first. */
  open(): Alert[] {
    return this.parse(this.sql.exec("SELECT body FROM alerts WHERE open = 1 ORDER BY fired_at").toArray());
  }

  openFor(slo: string, severity: Severity): Alert | undefined {
    return this.open().find((a) => a.slo === slo && a.severity === severity);
  }

  /** Newest first, optionally in one state. */
  list(state?: AlertState, limit = 200): Alert[] {
    const all = this.parse(this.sql.exec("SELECT body FROM alerts ORDER BY fired_at DESC").toArray());
    return all.filter((a) => state === undefined || a.state === state).slice(0, limit);
  }

  /** Keeps the newest resolved alerts only. */
  prune(): void {
    this.sql.exec(
      `DELETE FROM alerts WHERE open = 0 AND id NOT IN (SELECT id FROM alerts WHERE open = 0 ORDER BY fired_at DESC LIMIT ?)`,
      KEPT_RESOLVED,
    );
  }

  addSilence(silence: Silence): void {
    this.sql.exec(
      "INSERT INTO silences (id, until, body) VALUES (?, ?, ?)",
      silence.id,
      silence.until,
      JSON.stringify(silence),
    );
  }

  /** Silences still in force at `now`; ended ones are dropped. */
  silences(now: number): Silence[] {
    this.sql.exec("DELETE FROM silences WHERE until <= ?", now);
    return this.parse<Silence>(this.sql.exec("SELECT body FROM silences ORDER BY until").toArray());
  }

  deleteSilence(id: string): Silence | undefined {
    const row = this.sql.exec("SELECT body FROM silences WHERE id = ?", id).toArray()[0];
    this.sql.exec("DELETE FROM silences WHERE id = ?", id);
    return row ? (JSON.parse(String(row.body)) as Silence) : undefined;
  }

  queue(alertId: string, channel: Channel, level: number, action: DeliveryAction, now: number): void {
    this.sql.exec(
      "INSERT INTO deliveries (alert_id, channel, level, action, attempts, next_attempt_at) VALUES (?, ?, ?, ?, 0, ?)",
      alertId,
      channel,
      level,
      action,
      now,
    );
  }

  /** Every delivery owed, in the order they were queued. */
  deliveries(): QueuedDelivery[] {
    return this.sql
      .exec("SELECT * FROM deliveries ORDER BY id")
      .toArray()
      .map((row) => ({
        id: Number(row.id),
        alertId: String(row.alert_id),
        channel: row.channel as Channel,
        level: Number(row.level),
        action: row.action as DeliveryAction,
        attempts: Number(row.attempts),
        nextAttemptAt: Number(row.next_attempt_at),
      }));
  }

  delivered(id: number): void {
    this.sql.exec("DELETE FROM deliveries WHERE id = ?", id);
  }

  postpone(id: number, attempts: number, nextAttemptAt: number): void {
    this.sql.exec("UPDATE deliveries SET attempts = ?, next_attempt_at = ? WHERE id = ?", attempts, nextAttemptAt, id);
  }

  /** Notes a step of the alert's life for the Postgres copy. */
  recordEvent(alert: Alert, event: AlertEventName, at: number, details: Record<string, unknown> = {}): void {
    const entry: AlertEvent = {
      id: crypto.randomUUID(),
      alertId: alert.id,
      slo: alert.slo,
      severity: alert.severity,
      event,
      at,
      details,
    };
    this.sql.exec("INSERT INTO history (id, at, body) VALUES (?, ?, ?)", entry.id, at, JSON.stringify(entry));
    this.sql.exec(
      "DELETE FROM history WHERE id NOT IN (SELECT id FROM history ORDER BY at DESC, id LIMIT ?)",
      MAX_PENDING_HISTORY,
    );
  }

  /** The oldest events not yet copied to Postgres. */
  pendingHistory(limit: number): AlertEvent[] {
    return this.parse<AlertEvent>(this.sql.exec("SELECT body FROM history ORDER BY at, id LIMIT ?", limit).toArray());
  }

  historyCopied(ids: readonly string[]): void {
    for (const id of ids) this.sql.exec("DELETE FROM history WHERE id = ?", id);
  }

  private parse<T = Alert>(rows: Row[]): T[] {
    return rows.map((row) => JSON.parse(String(row.body)) as T);
  }
}
