// Good and valid counts per SLO and minute, in the SQLite storage of the Durable Object that receives every
// metric event: the data of every burn-rate window and of the error budget. At most one row per SLO and
// minute of the longest period (14 SLOs x 30 days = 604,800 rows of four numbers); older rows are pruned.
import type { MetricEvent } from "../metrics/catalog.ts";
import type { Counts } from "./burn-rate.ts";
import { sloEventsOf } from "./sli.ts";
import { SLOS } from "./slos.ts";
import type { Sql } from "./sql.ts";

const MINUTE_MS = 60_000;
/** The longest SLO period in minutes: the error-budget window, and how far back the ledger keeps minutes. */
export const PERIOD_MINUTES = Math.max(...SLOS.map((slo) => slo.periodDays)) * 24 * 60;

export const minuteOf = (ms: number) => Math.floor(ms / MINUTE_MS);

/** Counts per SLO id, then per window length in minutes (the last whole minutes before now, as Prometheus' `[w]` at a minute boundary). */
export type WindowCounts = Map<string, Map<number, Counts>>;

export class SloLedger {
  private readonly sql: Sql;

  constructor(sql: Sql) {
    this.sql = sql;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS slo_minutes (
        slo TEXT NOT NULL,
        minute INTEGER NOT NULL,
        good REAL NOT NULL,
        valid REAL NOT NULL,
        PRIMARY KEY (slo, minute)
      ) WITHOUT ROWID`,
    );
  }

  /** Adds the SLO events among `events` to the minute of `atMs`; the caller holds the transaction. */
  count(events: readonly MetricEvent[], atMs: number): void {
    const totals = new Map<string, Counts>();
    for (const event of events) {
      for (const { slo, good, valid } of sloEventsOf(SLOS, event)) {
        const sum = totals.get(slo) ?? { good: 0, valid: 0 };
        totals.set(slo, { good: sum.good + good, valid: sum.valid + valid });
      }
    }
    const minute = minuteOf(atMs);
    for (const [slo, { good, valid }] of totals) {
      this.sql.exec(
        `INSERT INTO slo_minutes (slo, minute, good, valid) VALUES (?, ?, ?, ?)
         ON CONFLICT (slo, minute) DO UPDATE SET good = good + excluded.good, valid = valid + excluded.valid`,
        slo,
        minute,
        good,
        valid,
      );
    }
  }

  /** Sums over the whole minutes of each window before the minute of `nowMs`, in one pass over the longest. */
  windows(nowMs: number, windowMinutes: readonly number[]): WindowCounts {
    const now = minuteOf(nowMs) - 1;
    const longest = Math.max(...windowMinutes);
    const sums = windowMinutes
      .map(
        (_, i) =>
          `SUM(CASE WHEN minute > ?1 - ${windowMinutes[i]} THEN good ELSE 0 END) AS g${i},
           SUM(CASE WHEN minute > ?1 - ${windowMinutes[i]} THEN valid ELSE 0 END) AS v${i}`,
      )
      .join(", ");
    // Naming every SLO lets SQLite walk one range of the primary key (slo, minute) per SLO instead of the table.
    const ids = SLOS.map((_, i) => `?${i + 2}`).join(", ");
    const rows = this.sql
      .exec(
        `SELECT slo, ${sums} FROM slo_minutes WHERE slo IN (${ids}) AND minute > ?1 - ${longest} AND minute <= ?1 GROUP BY slo`,
        now,
        ...SLOS.map((slo) => slo.id),
      )
      .toArray();
    const bySlo = new Map(rows.map((row) => [String(row.slo), row]));
    // Every SLO and window has counts, zero when no event was counted.
    return new Map(
      SLOS.map(({ id }) => {
        const row = bySlo.get(id);
        const counts = windowMinutes.map((minutes, i): [number, Counts] => [
          minutes,
          { good: Number(row?.[`g${i}`] ?? 0), valid: Number(row?.[`v${i}`] ?? 0) },
        ]);
        return [id, new Map(counts)];
      }),
    );
  }

  /** Drops the minutes no period reaches any more. */
  prune(nowMs: number): void {
    // One range of the primary key per SLO (slo, minute): no scan of the whole ledger. Ids no longer defined
    // keep their rows until the table is reset; windows() never reads them.
    for (const { id } of SLOS) {
      this.sql.exec("DELETE FROM slo_minutes WHERE slo = ? AND minute <= ?", id, minuteOf(nowMs) - PERIOD_MINUTES);
    }
  }
}
