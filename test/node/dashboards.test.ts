// Every Grafana dashboard in dashboards/ (current schema, a Prometheus datasource variable, panels in rows
// with gridPos) queries only what exists and what is known to be emitted:
// - a metric name must be `voiceassist_<catalog name>` (with _bucket, _sum or _count for a histogram), or
//   a recording rule `slo:...` that dashboards/prometheus/slo-rules.yml records;
// - a catalog metric must be listed in EMITTED below with the test file that asserts it is recorded.
//
// EMITTED is a plain list, checked by grepping: the named test file must exist and contain the catalog
// name inside a string literal ("name", 'name' or `name`, exposed or bare, with or without labels or a
// histogram suffix), which is how those tests assert emission (an Analytics Engine spy on the catalog
// name, or a /metrics series). A metric a dashboard queries but EMITTED lacks fails, and so does an
// entry whose test file does not mention the metric: adding a panel means naming the test that shows its
// metric being recorded, and deleting that assertion breaks this test. A longer name does not count
// (kb_chunks_per_document is not kb_chunks). The grep cannot tell an assertion from any other string: keep
// the entries pointing at real assertions.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isMetricName, type MetricName, metricCatalog } from "../../src/metrics/catalog.ts";
import { METRIC_NAMESPACE } from "../../src/metrics/prometheus.ts";
import { RULES_PATH } from "../../src/ops/prometheus-rules.ts";
import { sloIds } from "../../src/ops/slos.ts";

const ROOT = join(import.meta.dirname, "../..");
const DIR = join(ROOT, "dashboards");

/** Catalog metric → the test file that asserts it is emitted where it happens. */
const EMITTED: Partial<Record<MetricName, string>> = {
  http_requests_total: "test/workers/metrics.test.ts",
  http_request_duration_seconds: "test/workers/metrics.test.ts",
  cron_job_runs_total: "test/workers/metrics.test.ts",
  cron_job_duration_seconds: "test/workers/metrics.test.ts",
  metrics_series_dropped_total: "test/workers/metrics.test.ts",
  queue_messages_total: "test/workers/queue.test.ts",
  queue_lag_seconds: "test/workers/queue.test.ts",
  auth_registrations_total: "test/workers/identity-jobs.test.ts",
  auth_logins_total: "test/workers/identity-jobs.test.ts",
  auth_refreshes_total: "test/workers/identity-jobs.test.ts",
  auth_active_sessions: "test/workers/identity-jobs.test.ts",
  auth_daily_active_users: "test/workers/identity-jobs.test.ts",
  auth_monthly_active_users: "test/workers/identity-jobs.test.ts",
  auth_session_duration_seconds: "test/workers/identity-jobs.test.ts",
  rate_limited_total: "test/workers/rate-limit.test.ts",
  auth_lockouts_total: "test/workers/rate-limit.test.ts",
  audit_events_total: "test/workers/audit.test.ts",
  audit_chain_verifications_total: "test/workers/audit.test.ts",
  audit_chain_intact: "test/workers/audit.test.ts",
  health_check_status: "test/workers/health.test.ts",
  health_check_duration_seconds: "test/workers/health.test.ts",
  kb_uploads_total: "test/workers/kb.test.ts",
  kb_ingest_stage_duration_seconds: "test/workers/kb.test.ts",
  kb_chunks_per_document: "test/workers/kb.test.ts",
  kb_ingest_failures_total: "test/workers/kb.test.ts",
  kb_document_ready_seconds: "test/workers/kb.test.ts",
  kb_dead_letters_total: "test/workers/kb.test.ts",
  kb_documents: "test/workers/kb.test.ts",
  kb_chunks: "test/workers/kb.test.ts",
  kb_search_total: "test/workers/search.test.ts",
  kb_search_duration_seconds: "test/workers/search.test.ts",
  cache_lookups_total: "test/workers/cache.test.ts",
  cache_loads_total: "test/workers/cache.test.ts",
  phi_detections_total: "test/workers/phi.test.ts",
  voice_sessions_started_total: "test/workers/voice.test.ts",
  voice_sessions_ended_total: "test/workers/voice.test.ts",
  voice_time_to_first_seconds: "test/workers/voice.test.ts",
  voice_turn_latency_seconds: "test/workers/voice.test.ts",
  voice_errors_total: "test/workers/voice.test.ts",
  voice_sessions_active: "test/workers/voice.test.ts",
  voice_connect_seconds: "test/workers/voice.test.ts",
  voice_first_transcript_seconds: "test/workers/voice-relay.test.ts",
  voice_barge_ins_total: "test/workers/voice-relay.test.ts",
  rag_queries_total: "test/workers/answers.test.ts",
  rag_citations_per_answer: "test/workers/answers.test.ts",
  rag_invalid_citations_total: "test/workers/answers.test.ts",
  rag_stage_duration_seconds: "test/workers/answers.test.ts",
  answer_feedback_total: "test/workers/feedback.test.ts",
  llm_calls_total: "test/workers/answers.test.ts",
  llm_tokens_total: "test/workers/answers.test.ts",
  llm_cost_usd_total: "test/workers/answers.test.ts",
  flag_writes_total: "test/workers/flags-runtime.test.ts",
  flag_publish_failures_total: "test/workers/flags-runtime.test.ts",
  flag_rules_broken_total: "test/workers/flags-runtime.test.ts",
  flag_snapshot_fallbacks_total: "test/workers/flags-runtime.test.ts",
  flag_propagation_seconds: "test/workers/flags-runtime.test.ts",
  flag_evaluations_total: "test/workers/flags-runtime.test.ts",
  build_info: "test/workers/prometheus.test.ts",
  uptime_seconds: "test/workers/prometheus.test.ts",
  cost_budget_spent_ratio: "test/workers/cost-alerts.test.ts",
};

/** The business dashboard's rows, in order. */
const BUSINESS_ROWS = ["Users", "Answers", "Knowledge base", "Voice", "Cost", "System"];

const PREFIX = `${METRIC_NAMESPACE}_`;
// Grafana substitutes the datasource variable: a literal "${datasource}", not a template string.
const DATASOURCE_UID = ["$", "{datasource}"].join("");
const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;
const recordedRules = new Set(
  [...readFileSync(join(ROOT, RULES_PATH), "utf8").matchAll(/- record: "([^"]+)"/g)].map((m) => m[1] as string),
);

// PromQL words that are not series names (functions are recognised by the "(" that follows them).
const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/** The series names a PromQL expression reads: label matchers, strings, ranges and grouping lists removed. */
function seriesNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\boffset\s+-?[0-9a-z]+/gi, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names: string[] = [];
  for (const match of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = match[0];
    const next = stripped.slice((match.index as number) + word.length).trimStart();
    if (next.startsWith("(") || KEYWORDS.has(word.toLowerCase())) continue;
    names.push(word);
  }
  return names;
}

/**
 * Whether a test file names a metric inside a string literal: bare or exposed, optionally followed by a
 * histogram suffix, labels or a value, but not as the start of a longer name.
 */
const mentionsMetric = (text: string, metric: string): boolean =>
  new RegExp(`["'\`](${PREFIX})?${metric}(_(bucket|sum|count))?(?![a-z0-9_])`).test(text);

/** The catalog metric a series name belongs to, or a reason it belongs to none. */
function catalogMetric(series: string): { metric: MetricName } | { problem: string } {
  if (!series.startsWith(PREFIX)) return { problem: `${series}: not ${PREFIX}<catalog name> nor a recording rule` };
  const bare = series.slice(PREFIX.length);
  if (isMetricName(bare)) return { metric: bare };
  const base = bare.replace(HISTOGRAM_SUFFIX, "");
  if (base !== bare && isMetricName(base) && metricCatalog[base].type === "histogram") return { metric: base };
  return { problem: `${series}: no metric ${bare} in src/metrics/catalog.ts` };
}

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  type: string;
  title?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query?: string }[] };
  panels: Panel[];
}

/** Every panel, rows' nested panels included (a collapsed row keeps its panels inside). */
const allPanels = (panels: readonly Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

const files = readdirSync(DIR).filter((f) => f.endsWith(".json"));
const load = (file: string) => JSON.parse(readFileSync(join(DIR, file), "utf8")) as Dashboard;

describe("seriesNames", () => {
  it.each([
    ["sum by (route) (rate(voiceassist_http_requests_total[5m]))", ["voiceassist_http_requests_total"]],
    [
      'histogram_quantile(0.95, sum by (le) (rate(voiceassist_x_seconds_bucket{a="b{c}",le!="1"}[5m])))',
      ["voiceassist_x_seconds_bucket"],
    ],
    ['slo:sli_error:ratio_rate1h{slo="api-availability"} / 0.001', ["slo:sli_error:ratio_rate1h"]],
    ["(sum(rate(a_total[1h])) or vector(0)) / on() group_left sum(b_total offset 1h)", ["a_total", "b_total"]],
    ["voiceassist_audit_chain_intact", ["voiceassist_audit_chain_intact"]],
  ])("%s", (expr, names) => {
    expect(seriesNames(expr)).toEqual(names);
  });
});

describe("mentionsMetric", () => {
  it.each([
    ['expect(names).toContain("kb_chunks")', "kb_chunks", true],
    ["`voiceassist_kb_chunks 12`", "kb_chunks", true],
    ['"voiceassist_kb_document_ready_seconds_bucket{outcome=\\"ready\\"}"', "kb_document_ready_seconds", true],
    ['"kb_chunks_per_document"', "kb_chunks", false],
    ['"voiceassist_kb_chunksize"', "kb_chunks", false],
    ["kb_chunks outside a string", "kb_chunks", false],
  ])("%s mentions %s: %s", (text, metric, expected) => {
    expect(mentionsMetric(text, metric)).toBe(expected);
  });
});

describe("dashboards", () => {
  it("exist, with unique uids, among them the business, SLO, security, health and ingestion/voice boards", () => {
    expect(files).toEqual(
      expect.arrayContaining(["business.json", "slos.json", "security.json", "health.json", "ingestion-voice.json"]),
    );
    const uids = files.map((f) => load(f).uid);
    expect(new Set(uids).size).toBe(uids.length);
  });

  it.each(files)("%s: current schema, a Prometheus datasource variable, every panel placed and bound to it", (file) => {
    const dashboard = load(file);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
    const panels = allPanels(dashboard.panels);
    for (const panel of panels) {
      expect(panel.gridPos, panel.title).toMatchObject({
        h: expect.any(Number),
        w: expect.any(Number),
        x: expect.any(Number),
        y: expect.any(Number),
      });
      if (panel.type === "row") continue;
      expect(panel.datasource, panel.title).toEqual({ type: "prometheus", uid: DATASOURCE_UID });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
  });

  it.each(files)("%s: queries only catalog metrics and recorded rules", (file) => {
    const exprs = allPanels(load(file).panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
    expect(exprs.length).toBeGreaterThan(0);
    for (const expr of exprs) {
      const names = seriesNames(expr);
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) {
        if (name.startsWith("slo:")) {
          expect([...recordedRules], `${name} is not recorded in ${RULES_PATH}`).toContain(name);
          continue;
        }
        const found = catalogMetric(name);
        if ("problem" in found) expect.fail(`${file}: ${found.problem} (${expr})`);
      }
    }
  });

  it.each(files)("%s: queries only metrics a test shows being emitted (EMITTED)", (file) => {
    const exprs = allPanels(load(file).panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
    for (const name of exprs.flatMap(seriesNames)) {
      const found = name.startsWith("slo:") ? undefined : catalogMetric(name);
      if (!found || !("metric" in found)) continue;
      expect(
        EMITTED[found.metric],
        `${file} queries ${found.metric}: name the test that asserts its emission in EMITTED`,
      ).toBeDefined();
    }
  });

  it("EMITTED names test files that assert those metrics in a string literal", () => {
    const unasserted = Object.entries(EMITTED).filter(([metric, testFile]) => {
      const path = join(ROOT, testFile);
      return !existsSync(path) || !mentionsMetric(readFileSync(path, "utf8"), metric);
    });
    // Every entry named at once: "<test file> does not mention <metric> in a string".
    expect(unasserted.map(([metric, testFile]) => `${testFile} does not mention ${metric} in a string`)).toEqual([]);
  });

  it("every query is valid PromQL (promtool check rules on a rules file of all of them)", () => {
    const exprs = files.flatMap((file) =>
      allPanels(load(file).panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? "")),
    );
    const rules = exprs.map((expr, i) => ({ record: `dashboard:query${i}`, expr }));
    const dir = mkdtempSync(join(tmpdir(), "dashboards-"));
    try {
      const path = join(dir, "queries.yml");
      writeFileSync(path, JSON.stringify({ groups: [{ name: "dashboard-queries", rules }] })); // JSON is YAML
      const run = spawnSync("promtool", ["check", "rules", path], { encoding: "utf8" });
      if (run.error) throw new Error("promtool is not installed: apt-get install prometheus");
      expect(run.status, `${run.stdout}${run.stderr}`).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`business.json: at least 20 panels, each in one of the rows ${BUSINESS_ROWS.join(", ")} (in that order)`, () => {
    const { panels } = load("business.json");
    const rows = panels.filter((p) => p.type === "row");
    expect(rows.map((row) => row.title)).toEqual(BUSINESS_ROWS);
    expect(panels[0]?.type, "the first panel is a row: none sits outside one").toBe("row");
    // An open row holds the panels after it, down to the next row, on screen (gridPos) as in the list.
    const inRow = new Map<string, Panel[]>(rows.map((row) => [row.title as string, [...(row.panels ?? [])]]));
    let row = rows[0] as Panel;
    for (const panel of panels) {
      if (panel.type === "row") {
        row = panel;
        continue;
      }
      const next = rows[rows.indexOf(row) + 1];
      expect(panel.gridPos?.y, panel.title).toBeGreaterThan(row.gridPos?.y as number);
      if (next) expect(panel.gridPos?.y, panel.title).toBeLessThan(next.gridPos?.y as number);
      inRow.get(row.title as string)?.push(panel);
    }
    for (const [title, held] of inRow) expect(held.length, `row ${title}`).toBeGreaterThan(0);
    expect(allPanels(panels).filter((p) => p.type !== "row").length).toBeGreaterThanOrEqual(20);
  });

  it("slos.json shows every SLO, through the recording rules", () => {
    const text = JSON.stringify(load("slos.json"));
    for (const id of sloIds) {
      expect(text).toContain(`slo=\\"${id}\\"`);
      expect(text).toContain(`slo:sli_error:ratio_rate1h{slo=\\"${id}\\"}`);
    }
  });
});
