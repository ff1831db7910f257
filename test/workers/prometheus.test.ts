import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/env.ts";
import {
  type MetricDefinition,
  type MetricEvent,
  metricCatalog,
  metricEventProblem,
} from "../../src/metrics/catalog.ts";
import {
  applyEvent,
  buildSeries,
  escapeLabelValue,
  exposedName,
  renderExposition,
  type Series,
} from "../../src/metrics/prometheus.ts";
import { metricsAggregator } from "../../src/metrics/record.ts";

const http = (status: string, value: number): MetricEvent => ({
  name: "http_request_duration_seconds",
  labels: { method: "GET", route: "/health", status },
  value,
});

const aggregate = (events: MetricEvent[]): Series | undefined =>
  events.reduce<Series | undefined>((series, event) => applyEvent(series, event), undefined);

/** The lines of one metric's block in an exposition, HELP line first. */
const block = (text: string, metric: string) => {
  const lines = text.split("\n");
  const start = lines.indexOf(lines.find((l) => l.startsWith(`# HELP ${metric} `)) as string);
  const end = lines.findIndex((l, i) => i > start + 1 && l.startsWith("# HELP "));
  return lines.slice(start, end === -1 ? -1 : end);
};

describe("applyEvent", () => {
  it.each([
    { values: [1], sum: 1, count: 1 },
    { values: [1, 1, 3], sum: 5, count: 3 },
    { values: [0], sum: 0, count: 1 },
  ])("counter: sums increments $values", ({ values, sum, count }) => {
    const series = aggregate(
      values.map((value) => ({ name: "cron_job_runs_total", labels: { job: "rollup", outcome: "ok" }, value })),
    );
    expect(series).toMatchObject({
      metric: "cron_job_runs_total",
      labelValues: ["rollup", "ok"],
      sum,
      count,
      buckets: [],
    });
  });

  // Buckets: 0.005 0.01 0.025 0.05 0.1 0.25 0.3 0.5 1 1.5 2.5 5 10 (+Inf is count).
  it.each([
    { values: [0.001], buckets: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] },
    { values: [0.005], buckets: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] }, // le is inclusive
    { values: [0.0051], buckets: [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] },
    { values: [0.3, 2], buckets: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2] },
    { values: [11], buckets: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }, // only +Inf
  ])("histogram: cumulative buckets for $values", ({ values, buckets }) => {
    const series = aggregate(values.map((v) => http("200", v)));
    expect(series?.buckets).toEqual(buckets);
    expect(series?.count).toBe(values.length);
    expect(series?.sum).toBeCloseTo(values.reduce((a, b) => a + b, 0));
  });

  it("leaves the input series untouched", () => {
    const before = aggregate([http("200", 0.2)]) as Series;
    const copy = structuredClone(before);
    applyEvent(before, http("200", 0.001));
    expect(before).toEqual(copy);
  });
});

describe("renderExposition", () => {
  it("renders a counter and a histogram exactly", () => {
    const counter = aggregate([
      { name: "http_requests_total", labels: { method: "GET", route: "/health", status: "200" }, value: 1 },
      { name: "http_requests_total", labels: { method: "GET", route: "/health", status: "200" }, value: 1 },
    ]) as Series;
    const histogram = aggregate([http("200", 0.02), http("200", 3)]) as Series;
    const text = renderExposition([histogram, counter]);
    const labels = 'method="GET",route="/health",status="200"';
    expect(block(text, "voiceassist_http_requests_total")).toEqual([
      "# HELP voiceassist_http_requests_total HTTP requests answered, by method, route template and status.",
      "# TYPE voiceassist_http_requests_total counter",
      `voiceassist_http_requests_total{${labels}} 2`,
    ]);
    expect(block(text, "voiceassist_http_request_duration_seconds")).toEqual([
      "# HELP voiceassist_http_request_duration_seconds Time from receiving an HTTP request to its response headers, in seconds.",
      "# TYPE voiceassist_http_request_duration_seconds histogram",
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.005"} 0`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.01"} 0`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.025"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.05"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.1"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.25"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.3"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="0.5"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="1"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="1.5"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="2.5"} 1`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="5"} 2`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="10"} 2`,
      `voiceassist_http_request_duration_seconds_bucket{${labels},le="+Inf"} 2`,
      `voiceassist_http_request_duration_seconds_sum{${labels}} 3.02`,
      `voiceassist_http_request_duration_seconds_count{${labels}} 2`,
    ]);
  });

  it("exposes a catalog name under the voiceassist_ namespace", () => {
    expect(exposedName("http_requests_total")).toBe("voiceassist_http_requests_total");
  });

  it("lists every catalog metric with HELP and TYPE before any sample, sorted by name, ending in one newline", () => {
    const text = renderExposition([]);
    const names = (Object.keys(metricCatalog) as (keyof typeof metricCatalog)[]).sort();
    expect(text.split("\n").filter((l) => l.startsWith("# TYPE "))).toEqual(
      names.map((name) => `# TYPE voiceassist_${name} ${metricCatalog[name].type}`),
    );
    expect(text.split("\n").filter((l) => l.startsWith("# HELP "))).toEqual(
      names.map((name) => `# HELP voiceassist_${name} ${metricCatalog[name].help}`),
    );
    // Nothing but HELP and TYPE lines: no sample before the first event.
    expect(text.split("\n").filter((l) => l !== "" && !l.startsWith("# "))).toEqual([]);
    expect(text.endsWith("\n")).toBe(true);
    expect(text.endsWith("\n\n")).toBe(false);
  });

  it("orders series by label values whatever the insertion order", () => {
    const series = ["500", "200", "404"].map(
      (status) =>
        aggregate([
          { name: "http_requests_total", labels: { method: "GET", route: "/x", status }, value: 1 },
        ]) as Series,
    );
    const samples = block(renderExposition(series), "voiceassist_http_requests_total").slice(2);
    expect(samples.map((l) => /status="(\d+)"/.exec(l)?.[1])).toEqual(["200", "404", "500"]);
  });

  it.each([
    { raw: "plain", escaped: "plain" },
    { raw: 'say "hi"', escaped: 'say \\"hi\\"' },
    { raw: "C:\\path", escaped: "C:\\\\path" },
    { raw: "two\nlines", escaped: "two\\nlines" },
    { raw: '\\"\n', escaped: '\\\\\\"\\n' },
  ])("escapes label value $raw", ({ raw, escaped }) => {
    expect(escapeLabelValue(raw)).toBe(escaped);
    const series = aggregate([
      { name: "cron_job_runs_total", labels: { job: raw, outcome: "ok" }, value: 1 },
    ]) as Series;
    expect(renderExposition([series])).toContain(`voiceassist_cron_job_runs_total{job="${escaped}",outcome="ok"} 1\n`);
  });
});

describe("metric events are checked against the catalog", () => {
  it.each([
    { event: { name: "nope_total", labels: {}, value: 1 }, problem: /unknown metric "nope_total"/ },
    {
      event: { name: "queue_messages_total", labels: { queue: "q", outcome: "ack", user: "u" }, value: 1 },
      problem: /unknown label\(s\) user/,
    },
    { event: { name: "queue_messages_total", labels: { queue: "q" }, value: 1 }, problem: /outcome must be strings/ },
    {
      event: { name: "queue_messages_total", labels: { queue: "q", outcome: 1 }, value: 1 },
      problem: /outcome must be strings/,
    },
    {
      event: { name: "queue_messages_total", labels: { queue: "q", outcome: "ack" }, value: Number.NaN },
      problem: /finite/,
    },
    {
      event: { name: "queue_messages_total", labels: { queue: "q", outcome: "ack" }, value: -1 },
      problem: /cannot decrease/,
    },
    { event: { name: "toString", labels: {}, value: 1 }, problem: /unknown metric/ },
    { event: null, problem: /must be an object/ },
  ])("rejects $event", ({ event, problem }) => {
    expect(metricEventProblem(event)).toMatch(problem);
  });

  it("accepts a well-formed event", () => {
    expect(metricEventProblem(http("200", 0.1))).toBeUndefined();
  });

  it("rejects unknown names and labels at compile time", () => {
    // @ts-expect-error: not in the catalog
    const unknownName: MetricEvent = { name: "nope_total", labels: {}, value: 1 };
    const unknownLabel: MetricEvent = {
      name: "queue_messages_total",
      // @ts-expect-error: "user" is not a label of queue_messages_total
      labels: { queue: "q", outcome: "ack", user: "u" },
      value: 1,
    };
    expect([unknownName, unknownLabel].map(metricEventProblem)).toEqual([expect.any(String), expect.any(String)]);
  });
});

describe("the catalog follows Prometheus naming rules", () => {
  it.each(Object.entries(metricCatalog) as [string, MetricDefinition][])("%s", (name, definition) => {
    expect(name).toMatch(/^[a-z_][a-z0-9_]*$/);
    expect(definition.help.length).toBeGreaterThan(0);
    if (definition.type === "counter") expect(name).toMatch(/_total$/);
    for (const label of definition.labelNames) expect(label).toMatch(/^[a-z][a-z0-9_]*$/);
    expect(new Set(definition.labelNames).size).toBe(definition.labelNames.length);
    // Analytics Engine has 20 blobs: metric name and environment take two.
    expect(definition.labelNames.length).toBeLessThanOrEqual(18);
    if (definition.type === "histogram") {
      expect(definition.labelNames).not.toContain("le");
      expect(
        definition.buckets.every(
          (b, i) => Number.isFinite(b) && (i === 0 || b > (definition.buckets[i - 1] as number)),
        ),
      ).toBe(true);
    }
  });
});

describe("gauges", () => {
  it("keep the latest value instead of adding", () => {
    const event = (value: number) => ({ name: "auth_active_sessions" as const, labels: {}, value });
    const series = applyEvent(applyEvent(undefined, event(7)), event(3));
    expect(series.sum).toBe(3);
    expect(renderExposition([series])).toMatch(
      /^# TYPE voiceassist_auth_active_sessions gauge\nvoiceassist_auth_active_sessions 3$/m,
    );
  });
});

describe("build_info and uptime_seconds", () => {
  it("render build_info 1 labelled with the build, and uptime_seconds since the build was first seen", () => {
    const text = renderExposition(buildSeries({ version: "1.2.3", commit: 'ab"c' }, 1_000, 61_500));
    expect(block(text, "voiceassist_build_info").slice(1)).toEqual([
      "# TYPE voiceassist_build_info gauge",
      'voiceassist_build_info{version="1.2.3",commit="ab\\"c"} 1',
    ]);
    expect(block(text, "voiceassist_uptime_seconds").slice(1)).toEqual([
      "# TYPE voiceassist_uptime_seconds gauge",
      "voiceassist_uptime_seconds 60.5",
    ]);
  });

  it("GET /metrics carries them for APP_VERSION and GIT_COMMIT, counting uptime from that build's first scrape", async () => {
    const loaded = loadConfig(env);
    if (!loaded.ok) throw new Error("test config does not load");
    const { APP_VERSION: version, GIT_COMMIT: commit } = loaded.config;
    const scrape = async () => {
      const res = await exports.default.fetch("http://api.test/metrics", {
        headers: { authorization: "Bearer test-operator-token-0123456789" },
      });
      expect(res.status).toBe(200);
      return res.text();
    };
    const samples = (text: string, metric: string) =>
      text.split("\n").filter((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `));

    const first = await scrape();
    expect(samples(first, "voiceassist_build_info")).toEqual([
      `voiceassist_build_info{version="${version}",commit="${commit}"} 1`,
    ]);
    expect(samples(first, "voiceassist_uptime_seconds")).toHaveLength(1);

    // As if this build had first been scraped an hour ago: uptime counts from then, not from this scrape.
    const hour = 3_600_000;
    const aggregator = metricsAggregator(env);
    await runInDurableObject(aggregator, (_, state) => {
      state.storage.sql.exec("UPDATE build_first_seen SET first_seen_ms = first_seen_ms - ?", hour);
    });
    const uptime = (text: string) => Number(samples(text, "voiceassist_uptime_seconds")[0]?.split(" ")[1]);
    const later = await scrape();
    expect(uptime(later)).toBeGreaterThanOrEqual(3_600);
    expect(uptime(later)).toBeLessThan(3_600 + 600);

    // A new build starts from zero and is the only build_info shown; the first build keeps its start.
    const next = await aggregator.exposition({ version: "9.9.9", commit: "next" });
    expect(samples(next, "voiceassist_build_info")).toEqual([
      'voiceassist_build_info{version="9.9.9",commit="next"} 1',
    ]);
    expect(uptime(next)).toBeLessThan(600);
    expect(uptime(await scrape())).toBeGreaterThanOrEqual(3_600);
  });
});
