import {
  createExecutionContext,
  createScheduledController,
  evictDurableObject,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env.ts";
import worker from "../../src/index.ts";
import { runCron } from "../../src/jobs/cron.ts";
import { type MetricEvent, metricsAggregator, recordMetrics } from "../../src/metrics/record.ts";
import { MAX_SERIES } from "../../workers/metrics-aggregator.ts";

const OPERATOR_TOKEN = "test-operator-token-0123456789";
const operator = { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } };

/** Serves one request through the Worker and waits for what it left in waitUntil (the metrics). */
async function serve(path: string, init: RequestInit = {}, bindings: Env = env): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`http://api.test${path}`, init), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

async function scrape(): Promise<string> {
  const res = await exports.default.fetch("http://api.test/metrics", operator);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one sample line, or undefined when the series does not exist yet. */
const sample = (exposition: string, series: string): number | undefined => {
  const line = exposition.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

const cronRun = (job: string): MetricEvent => ({
  name: "cron_job_runs_total",
  labels: { job, outcome: "ok" },
  value: 1,
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("GET /metrics", () => {
  it("serves the exposition to the operator as Prometheus text 0.0.4", async () => {
    const res = await exports.default.fetch("http://api.test/metrics", operator);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    expect(text).toContain("# TYPE voiceassist_http_requests_total counter\n");
    expect(text).toContain("# TYPE voiceassist_http_request_duration_seconds histogram\n");
  });

  it.each<{ case: string; headers: Record<string, string>; challenge: string }>([
    { case: "no token", headers: {}, challenge: 'Bearer realm="operator"' },
    {
      case: "another scheme",
      headers: { authorization: `Basic ${OPERATOR_TOKEN}` },
      challenge: 'Bearer realm="operator"',
    },
    {
      case: "a wrong token",
      headers: { authorization: "Bearer test-operator-token-0123456788" },
      challenge: 'Bearer realm="operator", error="invalid_token"',
    },
  ])("answers $case with a 401 problem", async ({ headers, challenge }) => {
    const res = await exports.default.fetch("http://api.test/metrics", { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.headers.get("www-authenticate")).toBe(challenge);
    const body = await res.json<{ code: string; detail: string; requestId: string }>();
    expect(body.code).toBe("UNAUTHORIZED");
    expect(body.detail).toMatch(/OPERATOR_TOKEN/);
    expect(body.requestId).toBeTruthy();
  });

  it("is closed (403) while OPERATOR_TOKEN is unset", async () => {
    const res = await serve("/metrics", operator, { ...env, OPERATOR_TOKEN: "" });
    expect(res.status).toBe(403);
    const body = await res.json<{ code: string; detail: string }>();
    expect(body.code).toBe("FORBIDDEN");
    expect(body.detail).toMatch(/set OPERATOR_TOKEN/);
  });

  it("is described in the OpenAPI document with its bearer scheme", async () => {
    const res = await exports.default.fetch("http://api.test/openapi.json");
    const doc = await res.json<{
      paths: Record<string, { get?: { security?: unknown } }>;
      components: { securitySchemes: Record<string, unknown> };
    }>();
    expect(doc.paths["/metrics"]?.get?.security).toEqual([{ operatorToken: [] }, { bearerAuth: [] }, { apiKey: [] }]);
    expect(doc.components.securitySchemes.operatorToken).toMatchObject({ type: "http", scheme: "bearer" });
  });
});

describe("HTTP instrumentation", () => {
  const health = 'method="GET",route="/health",status="200"';

  it("counts and times requests by route template and status", async () => {
    const before = await scrape();
    await serve("/health");
    await serve("/health");
    const after = await scrape();
    expect(sample(after, `voiceassist_http_requests_total{${health}}`)).toBe(
      (sample(before, `voiceassist_http_requests_total{${health}}`) ?? 0) + 2,
    );
    expect(sample(after, `voiceassist_http_request_duration_seconds_count{${health}}`)).toBe(
      (sample(before, `voiceassist_http_request_duration_seconds_count{${health}}`) ?? 0) + 2,
    );
    expect(sample(after, `voiceassist_http_request_duration_seconds_bucket{${health},le="+Inf"}`)).toBe(
      sample(after, `voiceassist_http_request_duration_seconds_count{${health}}`),
    );
  });

  it("labels unmatched paths 'unmatched', never with the raw path", async () => {
    const series = 'voiceassist_http_requests_total{method="GET",route="unmatched",status="404"}';
    const before = sample(await scrape(), series) ?? 0;
    await serve("/no/such/path-8d1f");
    const text = await scrape();
    expect(sample(text, series)).toBe(before + 1);
    expect(text).not.toContain("path-8d1f");
  });

  it("labels refused requests with their status", async () => {
    const series = 'voiceassist_http_requests_total{method="GET",route="/metrics",status="401"}';
    const before = sample(await scrape(), series) ?? 0;
    await serve("/metrics");
    expect(sample(await scrape(), series)).toBe(before + 1);
  });

  it("writes each request to Analytics Engine with the documented layout", async () => {
    const write = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    await serve("/health");
    const points = write.mock.calls.map(([point]) => point);
    expect(points).toContainEqual({
      indexes: ["http_requests_total"],
      blobs: ["http_requests_total", "test", "GET", "/health", "200"],
      doubles: [1],
    });
    const duration = points.find((p) => p?.indexes?.[0] === "http_request_duration_seconds");
    expect(duration?.blobs).toEqual(["http_request_duration_seconds", "test", "GET", "/health", "200"]);
    expect(duration?.doubles?.[0]).toBeGreaterThanOrEqual(0);
  });

  it("does not fail the request when the aggregator is down, and logs it once", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const down = {
      idFromName: () => env.METRICS.idFromName("global"),
      get: () => ({ record: () => Promise.reject(new Error("aggregator overloaded")) }),
    };
    const bindings = { ...env, METRICS: down } as unknown as Env;
    expect((await serve("/health", {}, bindings)).status).toBe(200);
    expect((await serve("/health", {}, bindings)).status).toBe(200);
    const lines = errors.mock.calls
      .map(([line]) => String(line))
      .filter((l) => l.includes("metrics aggregator unreachable"));
    expect(lines).toHaveLength(1);
  });
});

describe("recordMetrics", () => {
  it("rejects an event that is not in the catalog, before writing anything", async () => {
    const write = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const unknown = { name: "nope_total", labels: {}, value: 1 } as unknown as MetricEvent;
    await expect(recordMetrics(env, undefined, cronRun("a"), unknown)).rejects.toThrow(/unknown metric "nope_total"/);
    const mislabelled = { name: "cron_job_runs_total", labels: { job: "a", outcome: "ok", user: "u" }, value: 1 };
    await expect(recordMetrics(env, undefined, mislabelled as MetricEvent)).rejects.toThrow(/unknown label\(s\) user/);
    expect(write).not.toHaveBeenCalled();
  });

  it("hands the aggregator call to waitUntil when given a context", async () => {
    const ctx = createExecutionContext();
    const waitUntil = vi.spyOn(ctx, "waitUntil");
    await recordMetrics(env, ctx, cronRun("deferred"));
    expect(waitUntil).toHaveBeenCalledTimes(1);
    await waitOnExecutionContext(ctx);
    expect(sample(await scrape(), 'voiceassist_cron_job_runs_total{job="deferred",outcome="ok"}')).toBe(1);
  });

  it("records cron runs and durations (src/jobs/cron.ts)", async () => {
    const table = { "0 0 1 1 *": { "metrics-test-job": async () => {} } };
    const ctx = createExecutionContext();
    await runCron(table, createScheduledController({ cron: "0 0 1 1 *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    const text = await scrape();
    expect(sample(text, 'voiceassist_cron_job_runs_total{job="metrics-test-job",outcome="ok"}')).toBe(1);
    expect(sample(text, 'voiceassist_cron_job_duration_seconds_count{job="metrics-test-job"}')).toBe(1);
  });
});

describe("MetricsAggregator", () => {
  it("keeps global figures: what one stub records, another stub reads", async () => {
    await metricsAggregator(env).record([cronRun("global"), cronRun("global")]);
    await metricsAggregator(env).record([cronRun("global")]);
    const exposition = await metricsAggregator(env).exposition();
    expect(sample(exposition, 'voiceassist_cron_job_runs_total{job="global",outcome="ok"}')).toBe(3);
  });

  it("keeps its state across eviction (SQLite, one row per series)", async () => {
    const stub = env.METRICS.get(env.METRICS.idFromName("eviction-test"));
    await stub.record([
      cronRun("survivor"),
      { name: "cron_job_duration_seconds", labels: { job: "survivor" }, value: 0.7 },
    ]);
    await evictDurableObject(stub);
    const revived = env.METRICS.get(env.METRICS.idFromName("eviction-test"));
    const exposition = await revived.exposition();
    expect(sample(exposition, 'voiceassist_cron_job_runs_total{job="survivor",outcome="ok"}')).toBe(1);
    expect(sample(exposition, 'voiceassist_cron_job_duration_seconds_bucket{job="survivor",le="1"}')).toBe(1);
    expect(sample(exposition, 'voiceassist_cron_job_duration_seconds_bucket{job="survivor",le="0.5"}')).toBe(0);
    expect(sample(exposition, 'voiceassist_cron_job_duration_seconds_sum{job="survivor"}')).toBe(0.7);
    const rows = await runInDurableObject(revived, (_, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM metric_series").one(),
    );
    expect(rows.n).toBe(2);
  });

  it("skips events that do not match the catalog and keeps the rest", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const stub = env.METRICS.get(env.METRICS.idFromName("invalid-events"));
    const stale = { name: "removed_metric_total", labels: {}, value: 1 } as unknown as MetricEvent;
    await stub.record([stale, cronRun("valid")]);
    const exposition = await stub.exposition();
    expect(exposition).not.toContain("removed_metric_total");
    expect(sample(exposition, 'voiceassist_cron_job_runs_total{job="valid",outcome="ok"}')).toBe(1);
    expect(errors.mock.calls.some(([line]) => String(line).includes("metric event skipped"))).toBe(true);
  });

  it("drops rows left by a metric that is no longer in the catalog", async () => {
    const stub = env.METRICS.get(env.METRICS.idFromName("stale-rows"));
    await stub.record([cronRun("kept")]);
    await runInDurableObject(stub, (_, state) => {
      state.storage.sql.exec("INSERT INTO metric_series VALUES ('removed_metric_total', '[]', 5, 5, '[]')");
    });
    await evictDurableObject(stub);
    const revived = env.METRICS.get(env.METRICS.idFromName("stale-rows"));
    expect(await revived.exposition()).not.toContain("removed_metric_total");
    const metrics = await runInDurableObject(revived, (_, state) =>
      state.storage.sql.exec<{ metric: string }>("SELECT metric FROM metric_series").toArray(),
    );
    expect(metrics).toEqual([{ metric: "cron_job_runs_total" }]);
  });

  it(`caps the state at ${MAX_SERIES} series and counts what it drops`, async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const stub = env.METRICS.get(env.METRICS.idFromName("series-cap"));
    await stub.record(Array.from({ length: MAX_SERIES }, (_, i) => cronRun(`job-${i}`)));
    await stub.record([cronRun("one-too-many"), cronRun("two-too-many"), cronRun("job-1")]);
    const exposition = await stub.exposition();
    expect(exposition).not.toContain("too-many");
    expect(sample(exposition, 'voiceassist_cron_job_runs_total{job="job-1",outcome="ok"}')).toBe(2);
    expect(sample(exposition, 'voiceassist_metrics_series_dropped_total{metric="cron_job_runs_total"}')).toBe(2);
  });
});
