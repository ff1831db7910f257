// Pure aggregation of metric events and the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
import { labelValues, type MetricDefinition, type MetricEvent, type MetricName, metricCatalog } from "./catalog.ts";

/** The namespace every exposed metric name starts with (Prometheus naming: one prefix per application). */
export const METRIC_NAMESPACE = "voiceassist";

/**
 * The name a catalog metric has in /metrics: `voiceassist_<catalog name>`. The one place the prefix is added;
 * catalog keys, recordMetrics events and Analytics Engine columns keep the bare name. Histogram series add
 * `_bucket`, `_sum` and `_count` to this name.
 */
export const exposedName = (metric: MetricName): string => `${METRIC_NAMESPACE}_${metric}`;

/** Everything recorded for one label set of one metric. A counter's value is its sum. */
export interface Series {
  metric: MetricName;
  /** In catalog label order. */
  labelValues: string[];
  sum: number;
  count: number;
  /** Histograms: cumulative count per catalog bucket; the +Inf bucket is count. Counters: empty. */
  buckets: number[];
}

/** The build answering a scrape (APP_VERSION, GIT_COMMIT). */
export interface Build {
  version: string;
  commit: string;
}

/**
 * build_info (1, labelled with the build) and uptime_seconds (since `firstSeenMs`, when the aggregator first
 * rendered the exposition for this build): scrape-time values, never stored as series.
 */
export const buildSeries = (build: Build, firstSeenMs: number, nowMs: number): Series[] => [
  { metric: "build_info", labelValues: [build.version, build.commit], sum: 1, count: 1, buckets: [] },
  { metric: "uptime_seconds", labelValues: [], sum: Math.max(0, (nowMs - firstSeenMs) / 1000), count: 1, buckets: [] },
];

/** Identifies a series: metric name plus label values in catalog order. */
export const seriesKey = (metric: MetricName, values: readonly string[]): string => JSON.stringify([metric, ...values]);

const bucketBounds = (metric: MetricName): readonly number[] => {
  const definition: MetricDefinition = metricCatalog[metric];
  return definition.type === "histogram" ? definition.buckets : [];
};

const emptySeries = (metric: MetricName, values: readonly string[]): Series => ({
  metric,
  labelValues: [...values],
  sum: 0,
  count: 0,
  buckets: bucketBounds(metric).map(() => 0),
});

/** The series after one event (a new object; the input is left untouched). */
export function applyEvent(series: Series | undefined, event: MetricEvent): Series {
  const current = series ?? emptySeries(event.name, labelValues(event));
  const bounds = bucketBounds(event.name);
  return {
    ...current,
    // A gauge keeps its latest value; counters and histograms accumulate.
    sum: metricCatalog[event.name].type === "gauge" ? event.value : current.sum + event.value,
    count: current.count + 1,
    buckets: current.buckets.map((n, i) => (event.value <= (bounds[i] as number) ? n + 1 : n)),
  };
}

export const escapeLabelValue = (value: string): string =>
  value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");

const escapeHelp = (text: string): string => text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");

const formatSampleValue = (n: number): string =>
  n === Number.POSITIVE_INFINITY ? "+Inf" : n === Number.NEGATIVE_INFINITY ? "-Inf" : String(n);

const formatLabels = (pairs: [string, string][]): string =>
  pairs.length ? `{${pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}` : "";

// Code-unit order, not locale order, so the output is identical everywhere.
const compareLabelValues = (a: Series, b: Series): number => {
  for (let i = 0; i < a.labelValues.length; i++) {
    const x = a.labelValues[i] as string;
    const y = b.labelValues[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
};

function renderSeries(series: Series): string[] {
  const definition: MetricDefinition = metricCatalog[series.metric];
  const metric = exposedName(series.metric);
  const labels = definition.labelNames.map((name, i): [string, string] => [name, series.labelValues[i] as string]);
  if (definition.type !== "histogram") return [`${metric}${formatLabels(labels)} ${formatSampleValue(series.sum)}`];
  const bucketLines = [...definition.buckets, Number.POSITIVE_INFINITY].map((le, i) => {
    const count = series.buckets[i] ?? series.count;
    return `${metric}_bucket${formatLabels([...labels, ["le", formatSampleValue(le)]])} ${count}`;
  });
  return [
    ...bucketLines,
    `${metric}_sum${formatLabels(labels)} ${formatSampleValue(series.sum)}`,
    `${metric}_count${formatLabels(labels)} ${series.count}`,
  ];
}

/**
 * The exposition: every catalog metric under its exposed name (exposedName), with HELP and TYPE even
 * before its first sample, metrics sorted by name, series sorted by label values, one trailing newline.
 */
export function renderExposition(all: Iterable<Series>): string {
  const byMetric = new Map<MetricName, Series[]>();
  for (const series of all) {
    const list = byMetric.get(series.metric) ?? [];
    list.push(series);
    byMetric.set(series.metric, list);
  }
  const lines: string[] = [];
  for (const metric of (Object.keys(metricCatalog) as MetricName[]).sort()) {
    const definition: MetricDefinition = metricCatalog[metric];
    const name = exposedName(metric);
    lines.push(`# HELP ${name} ${escapeHelp(definition.help)}`, `# TYPE ${name} ${definition.type}`);
    for (const series of (byMetric.get(metric) ?? []).sort(compareLabelValues)) lines.push(...renderSeries(series));
  }
  return `${lines.join("\n")}\n`;
}
