// The Prometheus rules file for teams that scrape /metrics, generated from the same SLO definitions
// (slos.ts) and burn-rate pairs (burn-rate.ts) as the Worker's evaluator; `npm run slo:rules` writes it to
// dashboards/prometheus/slo-rules.yml and test/node/slo-rules.test.ts checks both agree. Pure.
//
// Metric names are the catalog names as src/metrics/prometheus.ts exposes them (exposedName: voiceassist_ prefix).
import { exposedName } from "../metrics/prometheus.ts";
import { BURN_PAIRS, type BurnPair, WINDOW_MINUTES } from "./burn-rate.ts";
import { type Matchers, SLOS, type Slo } from "./slos.ts";

export const RULES_PATH = "dashboards/prometheus/slo-rules.yml";
export const RUNBOOK_DOC = "docs/runbooks/slos.md";
export const ALERT_NAME = "SloErrorBudgetBurn";

export interface RecordingRule {
  record: string;
  expr: string;
  labels: Record<string, string>;
}

export interface AlertingRule {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: { summary: string; description: string; runbook_url: string };
}

export interface RuleGroup {
  name: string;
  rules: (RecordingRule | AlertingRule)[];
}

/** A window as a Prometheus duration: 5m, 30m, 1h, 6h, 1d, 3d. */
export const promDuration = (minutes: number): string =>
  minutes % 1440 === 0 ? `${minutes / 1440}d` : minutes % 60 === 0 ? `${minutes / 60}h` : `${minutes}m`;

/** The recorded bad share of one SLO over one window, labelled slo="<id>". */
export const errorRatioRecord = (minutes: number): string => `slo:sli_error:ratio_rate${promDuration(minutes)}`;

const promString = (value: string): string => `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;

/** A selector; every matcher is a regex (`=~`), as the SLO matchers are written. */
const selector = (metric: string, matchers: Matchers, exact: Readonly<Record<string, string>> = {}): string => {
  const parts = [
    ...Object.entries(matchers).map(([label, regex]) => `${label}=~${promString(regex)}`),
    ...Object.entries(exact).map(([label, value]) => `${label}=${promString(value)}`),
  ];
  return parts.length ? `${metric}{${parts.join(",")}}` : metric;
};

const sumRate = (series: string, minutes: number): string => `sum(rate(${series}[${promDuration(minutes)}]))`;

/**
 * Bad events / valid events over the window. No valid events gives no sample or NaN (0/0), which no alert condition
 * matches: the evaluator's burn rate is 0 then, which matches none either.
 */
export function errorRatioExpr(slo: Slo, minutes: number): string {
  const { sli } = slo;
  if (sli.kind === "errors") {
    const metric = exposedName(sli.metric);
    const valid = sumRate(selector(metric, sli.select), minutes);
    // A bad series that never had a sample is absent, not 0: `or vector(0)` keeps the ratio at 0 then.
    const bad = sumRate(selector(metric, { ...sli.select, ...sli.bad }), minutes);
    return `(${bad} or vector(0))\n/\n${valid}`;
  }
  // `le` as the exposition renders a bound (String(n): 0.3, 1.5, 1).
  const metric = exposedName(sli.metric);
  const good = sumRate(
    selector(`${metric}_bucket`, { ...sli.select, ...sli.good }, { le: String(sli.under) }),
    minutes,
  );
  const valid = sumRate(selector(`${metric}_count`, sli.select), minutes);
  // With `good` matchers the good series can be absent (every document failed so far): 0 then, as for `bad`.
  const goodOrZero = sli.good ? `(${good} or vector(0))` : good;
  return `1 - (\n  ${goodOrZero}\n  /\n  ${valid}\n)`;
}

const percent = (objective: number): string => `${Number((objective * 100).toFixed(4))} %`;

function alertRule(slo: Slo, pair: BurnPair): AlertingRule {
  const id = promString(slo.id);
  const threshold = `${pair.factor} * (1 - ${slo.objective})`;
  const long = promDuration(pair.longMinutes);
  const short = promDuration(pair.shortMinutes);
  return {
    alert: ALERT_NAME,
    expr: [
      `${errorRatioRecord(pair.longMinutes)}{slo=${id}} > (${threshold})`,
      "and",
      `${errorRatioRecord(pair.shortMinutes)}{slo=${id}} > (${threshold})`,
    ].join("\n"),
    labels: { slo: slo.id, severity: pair.severity, pair: pair.id },
    annotations: {
      summary: `${slo.id}: error budget burning faster than ${pair.factor}x over ${long} and ${short}`,
      description:
        `${slo.description}: objective ${percent(slo.objective)} over ${slo.periodDays} days. ` +
        `Both the ${long} and the ${short} window spend the error budget more than ${pair.factor} times ` +
        `faster than the sustainable rate (${pair.severity}).`,
      runbook_url: `${RUNBOOK_DOC}#${slo.runbook}`,
    },
  };
}

/** One group per SLO: its recording rules (every window), then its alerting rules (every pair of its severities). */
export function sloRuleGroups(slos: readonly Slo[] = SLOS, pairs: readonly BurnPair[] = BURN_PAIRS): RuleGroup[] {
  const windows = [...new Set(pairs.flatMap((p) => [p.shortMinutes, p.longMinutes]))].sort((a, b) => a - b);
  // One group per SLO, recordings before the alerts that read them: Prometheus runs the rules of a group in
  // order at one timestamp, while separate groups run independently and an alert could read the recording of
  // the previous evaluation, a minute late.
  return slos.map((slo) => ({
    name: `slo-${slo.id}`,
    rules: [
      ...windows.map(
        (minutes): RecordingRule => ({
          record: errorRatioRecord(minutes),
          expr: errorRatioExpr(slo, minutes),
          labels: { slo: slo.id },
        }),
      ),
      ...pairs.filter((pair) => slo.severities.includes(pair.severity)).map((pair) => alertRule(slo, pair)),
    ],
  }));
}

// YAML by hand: the shape is fixed and small. Scalars are JSON strings (valid YAML double-quoted scalars),
// expressions literal blocks so the PromQL reads as written.
const scalar = (value: string): string => JSON.stringify(value);

const block = (text: string, indent: string): string =>
  `|-\n${text
    .split("\n")
    .map((line) => `${indent}${line}`)
    .join("\n")}`;

const mapping = (entries: Record<string, string>, indent: string): string =>
  Object.entries(entries)
    .map(([key, value]) => `${indent}${key}: ${scalar(value)}`)
    .join("\n");

function renderRule(rule: RecordingRule | AlertingRule): string {
  const head = "record" in rule ? `      - record: ${scalar(rule.record)}` : `      - alert: ${scalar(rule.alert)}`;
  const lines = [head, `        expr: ${block(rule.expr, "          ")}`];
  lines.push("        labels:", mapping(rule.labels, "          "));
  if ("annotations" in rule) lines.push("        annotations:", mapping(rule.annotations, "          "));
  return lines.join("\n");
}

/** The rules file as YAML text (https://prometheus.io/docs/prometheus/latest/configuration/recording_rules/). */
export function renderRules(groups: readonly RuleGroup[] = sloRuleGroups()): string {
  const header = [
    `# Generated by \`npm run slo:rules\` from src/ops/slos.ts and src/ops/burn-rate.ts: do not edit.`,
    `# Windows: ${WINDOW_MINUTES.map(promDuration).join(", ")}. Every burn-rate pair is its own alert (label pair);`,
    "# step() in burn-rate.ts folds the pairs of one severity into one alert per SLO (see docs/runbooks/slos.md).",
  ];
  const body = groups.map((group) =>
    [`  - name: ${scalar(group.name)}`, "    rules:", ...group.rules.map(renderRule)].join("\n"),
  );
  return `${[...header, "groups:", ...body].join("\n")}\n`;
}
