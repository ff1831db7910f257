// Pure figures for the ingestion benchmark: percentiles, per-stage summaries, Prometheus histograms.

export const STAGES = ["fetch", "extract", "chunk", "embed", "write"] as const;
export type Stage = (typeof STAGES)[number];

export interface Distribution {
  n: number;
  mean: number;
  p50: number;
  p95: number;
  max: number;
  total: number;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const total = sorted.reduce((sum, v) => sum + v, 0);
  return {
    n: sorted.length,
    mean: sorted.length ? total / sorted.length : Number.NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
    total,
  };
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/** The fields of an admin document listing the benchmark reads. */
export interface DocumentSample {
  external_id: string | null;
  status: string;
  embedding_model: string | null;
  chunk_count: number;
  attempts: number;
  error: string | null;
  timings: Record<string, number>;
  created_at: string;
  indexed_at: string | null;
}

export interface StageSummary {
  stages: Record<Stage, Distribution>;
  /** Sum of the five stages per document. */
  perDocument: Distribution;
  /** Share of the summed stage time spent in each stage. */
  share: Record<Stage, number>;
  chunksPerDocument: Distribution;
  /** indexed_at - created_at: queue wait plus processing, per ready document. */
  acceptToIndexedMs: Distribution;
  /** First to last indexed_at: how long the consumer took to drain the queue. */
  indexingSpanMs: number;
}

export function summariseDocuments(docs: DocumentSample[]): StageSummary {
  const ready = docs.filter((d) => d.status === "ready");
  const stages = Object.fromEntries(
    STAGES.map((s) => [s, distribution(ready.map((d) => d.timings[`${s}_ms`] ?? 0))]),
  ) as Record<Stage, Distribution>;
  const perDocument = distribution(ready.map((d) => STAGES.reduce((sum, s) => sum + (d.timings[`${s}_ms`] ?? 0), 0)));
  const share = Object.fromEntries(
    STAGES.map((s) => [s, perDocument.total ? stages[s].total / perDocument.total : 0]),
  ) as Record<Stage, number>;
  const indexed = ready.filter((d) => d.indexed_at).map((d) => Date.parse(d.indexed_at as string));
  return {
    stages,
    perDocument,
    share,
    chunksPerDocument: distribution(ready.map((d) => d.chunk_count)),
    acceptToIndexedMs: distribution(
      ready.filter((d) => d.indexed_at).map((d) => Date.parse(d.indexed_at as string) - Date.parse(d.created_at)),
    ),
    indexingSpanMs: indexed.length ? Math.max(...indexed) - Math.min(...indexed) : 0,
  };
}

export interface Histogram {
  count: number;
  sum: number;
  /** Cumulative counts by upper bound ("+Inf" last). */
  buckets: { le: number; count: number }[];
}

/** One histogram series out of a Prometheus text exposition, selected by name and a label subset. */
export function parseHistogram(exposition: string, name: string, labels: Record<string, string>): Histogram | null {
  const matches = (labelText: string) => Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`));
  const line = new RegExp(`^${name}_(bucket|sum|count)\\{([^}]*)\\} (\\S+)$`);
  const histogram: Histogram = { count: 0, sum: 0, buckets: [] };
  let found = false;
  for (const raw of exposition.split("\n")) {
    const m = line.exec(raw.trim());
    if (!m || !matches(m[2] as string)) continue;
    found = true;
    const value = Number(m[3]);
    if (m[1] === "sum") histogram.sum = value;
    else if (m[1] === "count") histogram.count = value;
    else {
      const le = /le="([^"]+)"/.exec(m[2] as string)?.[1] ?? "+Inf";
      histogram.buckets.push({ le: le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), count: value });
    }
  }
  histogram.buckets.sort((a, b) => a.le - b.le);
  return found ? histogram : null;
}

/** The upper bound of the bucket holding the q-quantile (0..1): an upper estimate, as Prometheus buckets allow. */
export function histogramQuantileUpperBound(h: Histogram, q: number): number {
  const target = q * h.count;
  for (const b of h.buckets) if (b.count >= target) return b.le;
  return Number.POSITIVE_INFINITY;
}

/** Queue deliveries logged by wrangler: "QUEUE kb-ingest 10/10 (1234ms)". */
export function parseQueueBatches(log: string, queue: string): { acked: number; size: number; ms: number }[] {
  const pattern = new RegExp(
    `QUEUE ${queue} (?:\\x1b\\[[0-9;]*m)*(\\d+)/(\\d+)(?:\\x1b\\[[0-9;]*m)* *(?:\\x1b\\[[0-9;]*m)*\\((\\d+)ms\\)`,
    "g",
  );
  return [...log.matchAll(pattern)].map((m) => ({ acked: Number(m[1]), size: Number(m[2]), ms: Number(m[3]) }));
}
