import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env.ts";
import {
  isMetricName,
  labelValues,
  type MetricDefinition,
  type MetricEvent,
  metricCatalog,
  metricEventProblem,
} from "../src/metrics/catalog.ts";
import {
  applyEvent,
  type Build,
  buildSeries,
  renderExposition,
  type Series,
  seriesKey,
} from "../src/metrics/prometheus.ts";
import { log } from "../src/observability/log.ts";
import { SloLedger, type WindowCounts } from "../src/ops/ledger.ts";
import { type DailySpend, SpendLedger } from "../src/ops/spend.ts";

/** A bug that labels by user id or raw path must not grow the state forever. */
export const MAX_SERIES = 10_000;

interface SeriesRow extends Record<string, SqlStorageValue> {
  metric: string;
  label_values: string;
  sum: number;
  count: number;
  buckets: string;
}

/**
 * The single writer behind GET /metrics: every isolate sends its events here, so the figures are
 * global. Series live in memory for speed and in SQLite (one row per series) to survive eviction.
 * The same events feed the SLO ledger (per-minute good/valid counts) and the spend ledger (model cost per
 * day) that the alert evaluator reads.
 */
export class MetricsAggregator extends DurableObject<Env> {
  private readonly series = new Map<string, Series>();
  private readonly ledger: SloLedger;
  private readonly spend: SpendLedger;
  private reportedDrop = false;
  private reportedInvalid = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.ledger = new SloLedger(ctx.storage.sql);
    this.spend = new SpendLedger(ctx.storage.sql);
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS metric_series (
        metric TEXT NOT NULL,
        label_values TEXT NOT NULL,
        sum REAL NOT NULL,
        count INTEGER NOT NULL,
        buckets TEXT NOT NULL,
        PRIMARY KEY (metric, label_values)
      )`,
    );
    // One row per build ever scraped (a few a week): where its uptime_seconds counts from, across evictions.
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS build_first_seen (
        version TEXT NOT NULL,
        git_commit TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (version, git_commit)
      )`,
    );
    for (const row of ctx.storage.sql.exec<SeriesRow>("SELECT * FROM metric_series").toArray()) {
      const series = seriesFromRow(row);
      if (series) {
        this.series.set(seriesKey(series.metric, series.labelValues), series);
        continue;
      }
      // A metric since removed from the catalog, or relabelled, has no place in the exposition.
      const { metric, label_values } = row;
      ctx.storage.sql.exec("DELETE FROM metric_series WHERE metric = ? AND label_values = ?", metric, label_values);
    }
  }

  /** Applies a batch; events that do not match the catalog (e.g. from an older deploy) are skipped. */
  record(events: MetricEvent[]): void {
    const changed = new Map<string, Series>();
    const valid: MetricEvent[] = [];
    for (const event of events) {
      const problem = metricEventProblem(event);
      if (problem) {
        if (!this.reportedInvalid) log("error", "metric event skipped", { problem });
        this.reportedInvalid = true;
        continue;
      }
      this.apply(event, changed);
      valid.push(event);
    }
    this.ctx.storage.transactionSync(() => {
      const now = Date.now();
      this.ledger.count(valid, now);
      this.spend.count(valid, now);
      for (const series of changed.values()) {
        this.ctx.storage.sql.exec(
          `INSERT INTO metric_series (metric, label_values, sum, count, buckets) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (metric, label_values) DO UPDATE SET sum = excluded.sum, count = excluded.count, buckets = excluded.buckets`,
          series.metric,
          JSON.stringify(series.labelValues),
          series.sum,
          series.count,
          JSON.stringify(series.buckets),
        );
      }
    });
  }

  /** The exposition; with the build that answers the scrape, its build_info and uptime_seconds too. */
  exposition(build?: Build): string {
    const now = Date.now();
    const scraped = build ? buildSeries(build, this.firstSeen(build, now), now) : [];
    return renderExposition([...this.series.values(), ...scraped]);
  }

  /**
   * When the exposition was first rendered for this build (now, the first time). A scrape, not an event, marks
   * it: events do not carry the build, so uptime starts up to one scrape interval after the deploy.
   */
  private firstSeen({ version, commit }: Build, nowMs: number): number {
    const sql = this.ctx.storage.sql;
    sql.exec(
      "INSERT INTO build_first_seen (version, git_commit, first_seen_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      version,
      commit,
      nowMs,
    );
    return sql
      .exec<{ first_seen_ms: number }>(
        "SELECT first_seen_ms FROM build_first_seen WHERE version = ? AND git_commit = ?",
        version,
        commit,
      )
      .one().first_seen_ms;
  }

  /** SLO counts per window ending now; also drops the minutes older than every period (run each minute). */
  sloWindows(nowMs: number, windowMinutes: readonly number[]): WindowCounts {
    this.ledger.prune(nowMs);
    return this.ledger.windows(nowMs, windowMinutes);
  }

  /** Model spend per UTC day over the cost budgets' reach (spend.ts); also drops older days. */
  dailySpend(nowMs: number): DailySpend {
    return this.spend.daily(nowMs);
  }

  private apply(event: MetricEvent, changed: Map<string, Series>): void {
    const key = seriesKey(event.name, labelValues(event));
    const existing = this.series.get(key);
    // The drop counter has one series per catalog metric, so it is exempt from the cap.
    if (!existing && this.series.size >= MAX_SERIES && event.name !== "metrics_series_dropped_total") {
      if (!this.reportedDrop) log("error", "metrics series limit reached", { limit: MAX_SERIES, metric: event.name });
      this.reportedDrop = true;
      this.apply({ name: "metrics_series_dropped_total", labels: { metric: event.name }, value: 1 }, changed);
      return;
    }
    const updated = applyEvent(existing, event);
    this.series.set(key, updated);
    changed.set(key, updated);
  }
}

function seriesFromRow(row: SeriesRow): Series | undefined {
  if (!isMetricName(row.metric)) return undefined;
  const definition: MetricDefinition = metricCatalog[row.metric];
  const labelValues: unknown = JSON.parse(row.label_values);
  const buckets: unknown = JSON.parse(row.buckets);
  const bucketCount = definition.type === "histogram" ? definition.buckets.length : 0;
  if (!Array.isArray(labelValues) || labelValues.length !== definition.labelNames.length) return undefined;
  if (!Array.isArray(buckets) || buckets.length !== bucketCount) return undefined;
  return { metric: row.metric, labelValues, sum: row.sum, count: row.count, buckets };
}
