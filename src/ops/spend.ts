// Model spend per UTC day, in the SQLite storage of the Durable Object that receives every metric event (the
// llm_cost_usd_total increments): what the cost budgets and the anomaly check read, without Postgres. At most
// one row per day, feature and model for KEPT_DAYS days; older rows are pruned.
import type { MetricEvent } from "../metrics/catalog.ts";
import type { Sql } from "./sql.ts";

const DAY_MS = 86_400_000;
/** A calendar month (31 days) and the anomaly check's 7 full days before today both fit. */
export const KEPT_DAYS = 40;

/** Days since the Unix epoch, in UTC. */
export const dayOf = (ms: number) => Math.floor(ms / DAY_MS);

/** Spend in US dollars per day number (dayOf), for the days that had any. */
export type DailySpend = ReadonlyMap<number, number>;

export class SpendLedger {
  private readonly sql: Sql;

  constructor(sql: Sql) {
    this.sql = sql;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS spend_days (
        day INTEGER NOT NULL,
        feature TEXT NOT NULL,
        model TEXT NOT NULL,
        usd REAL NOT NULL,
        PRIMARY KEY (day, feature, model)
      ) WITHOUT ROWID`,
    );
  }

  /** Adds the cost events among `events` to the day of `atMs`; the caller holds the transaction. */
  count(events: readonly MetricEvent[], atMs: number): void {
    const day = dayOf(atMs);
    for (const event of events) {
      if (event.name !== "llm_cost_usd_total" || event.value <= 0) continue;
      this.sql.exec(
        `INSERT INTO spend_days (day, feature, model, usd) VALUES (?, ?, ?, ?)
         ON CONFLICT (day, feature, model) DO UPDATE SET usd = usd + excluded.usd`,
        day,
        event.labels.feature,
        event.labels.model,
        event.value,
      );
    }
  }

  /** Spend per day over the last `days` days, today included; drops the days no budget reads any more. */
  daily(nowMs: number, days = KEPT_DAYS): DailySpend {
    const today = dayOf(nowMs);
    this.sql.exec("DELETE FROM spend_days WHERE day <= ?", today - KEPT_DAYS);
    const rows = this.sql
      .exec("SELECT day, SUM(usd) AS usd FROM spend_days WHERE day > ? GROUP BY day", today - days)
      .toArray();
    return new Map(rows.map((row) => [Number(row.day), Number(row.usd)]));
  }
}
