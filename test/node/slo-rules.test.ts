// The Prometheus SLO rules (src/ops/prometheus-rules.ts, dashboards/prometheus/slo-rules.yml): committed
// file fresh (and the SLO dashboard generated with it), accepted by promtool, firing and resolving on the
// same minutes as the Worker's evaluator (src/ops/burn-rate.ts) on the same synthetic traffic, and every
// runbook_url landing on a heading.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type MetricDefinition, metricCatalog } from "../../src/metrics/catalog.ts";
import { exposedName, renderExposition } from "../../src/metrics/prometheus.ts";
import { costAlertIds } from "../../src/ops/budgets.ts";
import {
  BURN_PAIRS,
  CALM,
  type Counts,
  type PairReading,
  readPairs,
  type SeverityState,
  step,
  WINDOW_MINUTES,
} from "../../src/ops/burn-rate.ts";
import { runbookUrl } from "../../src/ops/deliver.ts";
import {
  ALERT_NAME,
  type AlertingRule,
  RULES_PATH,
  RUNBOOK_DOC,
  renderRules,
  sloRuleGroups,
} from "../../src/ops/prometheus-rules.ts";
import { DASHBOARD_PATH, renderSloDashboard } from "../../src/ops/slo-dashboard.ts";
import { SLOS, type Slo } from "../../src/ops/slos.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const rulesFile = join(root, RULES_PATH);
const scratch = mkdtempSync(join(tmpdir(), "slo-rules-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function promtool(...args: string[]): { status: number | null; output: string } {
  const probe = spawnSync("promtool", ["--version"], { encoding: "utf8" });
  if (probe.error) {
    throw new Error(
      "promtool is not installed: apt-get install prometheus (Debian's package has it; .ci/run installs it)",
    );
  }
  const run = spawnSync("promtool", args, { encoding: "utf8", cwd: scratch });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const alertRules = (): AlertingRule[] =>
  sloRuleGroups()
    .flatMap((group) => group.rules)
    .filter((rule): rule is AlertingRule => "alert" in rule);

const sloById = (id: string): Slo => {
  const slo = SLOS.find((s) => s.id === id);
  if (!slo) throw new Error(`no SLO ${id}`);
  return slo;
};

describe("the committed rules file", () => {
  it("is what `npm run slo:rules` generates", () => {
    const committed = readFileSync(rulesFile, "utf8");
    if (committed !== renderRules()) {
      expect.fail(`${RULES_PATH} is stale: run \`npm run slo:rules\` and commit the result`);
    }
  });

  it("has beside it the SLO dashboard, dashboards/slos.json, also as `npm run slo:rules` generates it", () => {
    const committed = readFileSync(join(root, DASHBOARD_PATH), "utf8");
    if (committed !== renderSloDashboard()) {
      expect.fail(`${DASHBOARD_PATH} is stale: run \`npm run slo:rules\` and commit the result`);
    }
  });

  it("passes promtool check rules", () => {
    const { status, output } = promtool("check", "rules", rulesFile);
    expect(status, output).toBe(0);
  });

  it("reads metrics under the names and bucket bounds /metrics renders", () => {
    const exposition = renderExposition([]);
    for (const slo of SLOS) {
      const definition: MetricDefinition = metricCatalog[slo.sli.metric];
      const type = slo.sli.kind === "errors" ? "counter" : "histogram";
      expect(exposition, slo.id).toContain(`# TYPE ${exposedName(slo.sli.metric)} ${type}\n`);
      if (slo.sli.kind === "latency") {
        expect(definition.type === "histogram" ? definition.buckets : [], slo.id).toContain(slo.sli.under);
      }
    }
  });
});

// GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to hyphens,
// repeats suffixed -1, -2...
function githubAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const text = (heading[1] as string).replace(/`/g, "").replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

describe("runbook links", () => {
  it("every alert's runbook_url names a heading of docs/runbooks/slos.md, the Worker's cost alerts' too", () => {
    const anchors = githubAnchors(readFileSync(join(root, RUNBOOK_DOC), "utf8"));
    const urls = [...readFileSync(rulesFile, "utf8").matchAll(/runbook_url: "([^"]*)"/g)].map((m) => m[1] as string);
    const pairsOf = (slo: Slo) => BURN_PAIRS.filter((pair) => slo.severities.includes(pair.severity)).length;
    expect(urls).toHaveLength(SLOS.reduce((sum, slo) => sum + pairsOf(slo), 0));
    for (const url of [...urls, ...costAlertIds.map(runbookUrl)]) {
      const [path, anchor] = url.split("#");
      expect(path).toBe(RUNBOOK_DOC);
      expect([...anchors], url).toContain(anchor);
    }
  });
});

// ---- promtool test rules against the Worker's evaluator ----
//
// Synthetic traffic is given per minute: minute i's requests are counted at i minutes. Every counter is
// sampled every 30 s from 0 (the sample at i + 30 s repeats the value at i) and starts at a large value, as
// on a Worker that has served for a while. Then Prometheus' rate() over [T - w, T] sees exactly the
// requests of minutes T - w + 1 .. T, the evaluator's window at minute T:
// - the window's first sample is the value at T - w, whether the range is closed at the start (Prometheus
//   2.x: the sample at T - w) or open (3.x: the one at T - w + 30 s, which repeats it);
// - the extrapolation to the window edges scales the bad and the valid rate by the same factor (all
//   series share their timestamps, and the large start value keeps the "extrapolate to zero" clamp out),
//   so their ratio is exact, also for windows reaching back before the first sample (the evaluator then
//   counts every minute since 0);
// - rules are evaluated each minute (evaluation_interval 1m), as the evaluator's cron runs; the evaluator
//   is fed, at minute T, the counts of the last w complete minutes for each window w.
// The scenarios are checked for ties (a burn rate equal to its factor, where float rounding could differ).

const START = 1_000_000;

/** Cumulative samples every 30 s for minutes 0..perMinute.length (perMinute[i - 1] = minute i). */
const samples = (perMinute: readonly number[]): string => {
  const values: number[] = [START, START];
  let total = START;
  for (const n of perMinute) {
    total += n;
    values.push(total, total);
  }
  return values.slice(0, -1).join(" ");
};

interface Scenario {
  slo: Slo;
  minutes: number;
  /** Input series name → events per minute. */
  series: Record<string, number[]>;
  /** Per minute, the SLO's good and valid events as the Worker's ledger records them. */
  counts: Counts[];
}

const windowCounts = (counts: readonly Counts[], minute: number): Map<number, Counts> =>
  new Map(
    WINDOW_MINUTES.map((w) => {
      const slice = counts.slice(Math.max(0, minute - w), minute);
      return [w, slice.reduce((a, c) => ({ good: a.good + c.good, valid: a.valid + c.valid }), { good: 0, valid: 0 })];
    }),
  );

const burning = (r: PairReading) => r.long > r.pair.factor && r.short > r.pair.factor;
const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, b);

interface Evaluation {
  minute: number;
  readings: PairReading[];
}

const evaluate = (scenario: Scenario): Evaluation[] =>
  Array.from({ length: scenario.minutes }, (_, i) => ({
    minute: i + 1,
    readings: readPairs(windowCounts(scenario.counts, i + 1), scenario.slo.objective),
  }));

/** The Worker's page alert over the scenario: transitions of step() minute by minute. */
function pageTransitions(evaluations: Evaluation[]): { minute: number; transition: string; firedBy: string | null }[] {
  let state: SeverityState = CALM;
  const out: { minute: number; transition: string; firedBy: string | null }[] = [];
  for (const { minute, readings } of evaluations) {
    const next = step(state, "page", readings);
    if (next.transition)
      out.push({ minute, transition: next.transition, firedBy: next.state.firedBy ?? state.firedBy });
    state = next.state;
  }
  return out;
}

function runPromtoolTest(scenario: Scenario, evaluations: Evaluation[]): { status: number | null; output: string } {
  const rules = alertRules().filter((r) => r.labels.slo === scenario.slo.id);
  const expected = (readings: PairReading[]) =>
    readings.filter(burning).map((r) => {
      const rule = rules.find((x) => x.labels.pair === r.pair.id) as AlertingRule;
      return { exp_labels: rule.labels, exp_annotations: rule.annotations };
    });
  const testFile = {
    rule_files: [rulesFile],
    evaluation_interval: "1m",
    tests: [
      {
        interval: "30s",
        input_series: Object.entries(scenario.series).map(([series, perMinute]) => ({
          series,
          values: samples(perMinute),
        })),
        alert_rule_test: evaluations.map(({ minute, readings }) => ({
          eval_time: `${minute}m`,
          alertname: ALERT_NAME,
          exp_alerts: expected(readings),
        })),
      },
    ],
  };
  const path = join(scratch, `${scenario.slo.id}.test.yml`);
  writeFileSync(path, JSON.stringify(testFile, null, 1)); // JSON is YAML
  return promtool("test", "rules", path);
}

const phases = (...parts: [number, (minute: number) => number][]): number[] =>
  parts.flatMap(([length, perMinute]) => Array.from({ length }, (_, i) => perMinute(i)));

function apiOutage(): { scenario: Scenario; outageStart: number; recovery: number } {
  const steady = 60;
  const outage = 12;
  const after = 60;
  const api = 'voiceassist_http_requests_total{method="GET",route="/api/kb/search"';
  const v1 = 'voiceassist_http_requests_total{method="POST",route="/v1/chat/completions"';
  const during = (n: number) => phases([steady, () => 0], [outage, () => n], [after, () => 0]);
  const outside = (n: number) => phases([steady, () => n], [outage, () => 0], [after, () => n]);
  const series = {
    [`${api},status="200"}`]: outside(97),
    [`${api},status="503"}`]: during(97),
    [`${api},status="404"}`]: phases([steady + outage + after, () => 3]), // 4xx are not bad
    [`${v1},status="200"}`]: outside(23),
    [`${v1},status="502"}`]: during(23),
    // Not under /api or /v1: outside the SLO even while it fails.
    'voiceassist_http_requests_total{method="GET",route="/health",status="500"}': phases([
      steady + outage + after,
      () => 5,
    ]),
  };
  const good = (i: number) =>
    (series[`${api},status="200"}`][i] as number) + (series[`${v1},status="200"}`][i] as number) + 3;
  const counts = Array.from({ length: steady + outage + after }, (_, i) => ({
    good: good(i),
    valid: good(i) + (series[`${api},status="503"}`][i] as number) + (series[`${v1},status="502"}`][i] as number),
  }));
  return {
    scenario: { slo: sloById("api-availability"), minutes: counts.length, series, counts },
    outageStart: steady + 1,
    recovery: steady + outage + 1,
  };
}

function searchSlowdown(): { scenario: Scenario; outageStart: number; recovery: number } {
  const steady = 60;
  const slow = 50;
  const after = 90;
  const labels = 'method="GET",route="/api/kb/search",status="200"';
  const total = 40;
  const slowPerMinute = (i: number) => (i >= steady && i < steady + slow ? 37 : 1);
  const all = phases([steady + slow + after, () => total]);
  const under = all.map((n, i) => n - slowPerMinute(i));
  const series = {
    [`voiceassist_http_request_duration_seconds_bucket{${labels},le="0.25"}`]: under,
    [`voiceassist_http_request_duration_seconds_bucket{${labels},le="0.3"}`]: under,
    [`voiceassist_http_request_duration_seconds_bucket{${labels},le="+Inf"}`]: all,
    [`voiceassist_http_request_duration_seconds_count{${labels}}`]: all,
    // Another route, always slow: not the search SLO's business.
    'voiceassist_http_request_duration_seconds_bucket{method="GET",route="/api/kb/documents",status="200",le="0.3"}':
      phases([all.length, () => 0]),
    'voiceassist_http_request_duration_seconds_count{method="GET",route="/api/kb/documents",status="200"}': phases([
      all.length,
      () => 9,
    ]),
  };
  const counts = all.map((valid, i) => ({ good: under[i] as number, valid }));
  return {
    scenario: { slo: sloById("search-latency"), minutes: counts.length, series, counts },
    outageStart: steady + 1,
    recovery: steady + slow + 1,
  };
}

describe("promtool test rules agrees with the Worker's evaluator", () => {
  it.each([
    { name: "full api-availability outage", build: apiOutage, pageWithin: 2, resolveWithin: 10 },
    // A partial slowdown first burns the 6h/30m pair, which resolves on its 30-minute window.
    { name: "search-latency slowdown", build: searchSlowdown, pageWithin: 30, resolveWithin: 31 },
  ])("$name: the page fires and resolves on the evaluator's minutes", ({ build, pageWithin, resolveWithin }) => {
    const { scenario, outageStart, recovery } = build();
    const evaluations = evaluate(scenario);
    for (const { minute, readings } of evaluations) {
      for (const r of readings) {
        const tie = near(r.long, r.pair.factor) || near(r.short, r.pair.factor);
        expect(tie, `minute ${minute}, pair ${r.pair.id}: a burn rate equals its factor`).toBe(false);
      }
    }

    // The Worker pages once, soon after the incident starts, and resolves soon after it ends.
    const transitions = pageTransitions(evaluations);
    expect(transitions.map((t) => t.transition)).toEqual(["fired", "resolved"]);
    const [fired, resolved] = transitions as [(typeof transitions)[0], (typeof transitions)[0]];
    expect(fired.minute - outageStart).toBeLessThan(pageWithin);
    expect(resolved.minute - recovery).toBeLessThan(resolveWithin);

    // In Prometheus the pair that fired the Worker's page is an alert of its own, firing from `fired` up
    // to the minute before `resolved`. Its siblings fire while both their windows burn; the evaluator folds
    // them into the same page (and disarms them when it resolves), Alertmanager does by grouping on slo and
    // severity. promtool checks every alert of the rules file at every minute against that expectation.
    const pairFiring = (minute: number) =>
      burning((evaluations[minute - 1] as Evaluation).readings.find((r) => r.pair.id === fired.firedBy) as PairReading);
    expect([pairFiring(fired.minute - 1), pairFiring(fired.minute)]).toEqual([false, true]);
    expect([pairFiring(resolved.minute - 1), pairFiring(resolved.minute)]).toEqual([true, false]);

    const { status, output } = runPromtoolTest(scenario, evaluations);
    expect(status, output).toBe(0);
  });
});
