// The Grafana SLO dashboard (dashboards/slos.json), generated from the same SLO definitions (slos.ts), burn-rate
// pairs (burn-rate.ts) and recording rules (prometheus-rules.ts) as the Prometheus rules; `npm run slo:rules`
// writes it and test/node/slo-rules.test.ts checks the committed file is what this module renders. Pure.
import { BURN_PAIRS, type BurnPair, type Severity, WINDOW_MINUTES } from "./burn-rate.ts";
import { errorRatioExpr, errorRatioRecord, promDuration } from "./prometheus-rules.ts";
import { SLOS, type Slo } from "./slos.ts";

export const DASHBOARD_PATH = "dashboards/slos.json";

/** The windows the SLI panel draws: the shortest page window and the day. */
const SLI_WINDOWS = [60, 1440];

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's datasource variable, not a template literal.
const DATASOURCE = { type: "prometheus", uid: "${datasource}" };
const ROW_HEIGHT = 1 + 8 + 8;
const PANELS_PER_ROW = 5;

// 1 - 0.999 is 0.0010000000000000009 in floating point: the dashboard shows the budget as written.
const budget = (slo: Slo): number => Number((1 - slo.objective).toFixed(10));

/** The recorded bad share of one SLO over one window. */
const recorded = (slo: Slo, minutes: number): string => `${errorRatioRecord(minutes)}{slo=${JSON.stringify(slo.id)}}`;

const periodRatio = (slo: Slo): string => `1 - (\n${errorRatioExpr(slo, slo.periodDays * 1440)}\n)`;

const targets = (queries: [expr: string, legendFormat: string][]) =>
  queries.map(([expr, legendFormat], i) => ({
    refId: String.fromCharCode(65 + i),
    datasource: DATASOURCE,
    expr,
    legendFormat,
  }));

const steps = (...values: [color: string, value: number | null][]) => ({
  mode: "absolute",
  steps: values.map(([color, value]) => ({ color, value })),
});

const gridPos = (h: number, w: number, x: number, y: number) => ({ h, w, x, y });

const statOptions = {
  reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
  colorMode: "value",
  graphMode: "area",
  textMode: "auto",
};

const pairsText = (pairs: readonly BurnPair[]): string =>
  pairs.map((p) => `${p.factor}x over ${promDuration(p.longMinutes)} and ${promDuration(p.shortMinutes)}`).join(", ");

const pairsOf = (severity: Severity): BurnPair[] => BURN_PAIRS.filter((p) => p.severity === severity);

/** When its burn-rate alerts fire: pages and tickets, or tickets only for a warning threshold. */
function burnDescription(slo: Slo): string {
  const condition = "when both windows of a pair exceed the factor";
  if (slo.severities.includes("page")) {
    return `Pages fire ${condition}: ${pairsText(pairsOf("page"))}; tickets ${pairsText(pairsOf("ticket"))}.`;
  }
  const critical = SLOS.find((s) => s.runbook === slo.runbook && s.severities.includes("page"));
  const pager = critical ? ` (the critical SLO ${critical.id} pages)` : "";
  return `A warning threshold: tickets only, ${condition}: ${pairsText(pairsOf("ticket"))}${pager}.`;
}

/** One row: the SLO's heading, SLI and budget over its period, SLI over two windows, burn rate per window. */
function sloRow(slo: Slo, index: number) {
  const id = index * PANELS_PER_ROW + 1;
  const y = index * ROW_HEIGHT;
  const percent = `${(slo.objective * 100).toFixed(1)} %`;
  const period = `${slo.periodDays} days`;
  const topFactor = Math.max(...BURN_PAIRS.filter((p) => slo.severities.includes(p.severity)).map((p) => p.factor));
  return [
    {
      id,
      type: "row",
      title: `${slo.id}: ${slo.description} (objective ${percent})`,
      collapsed: false,
      gridPos: gridPos(1, 24, 0, y),
      panels: [],
    },
    {
      id: id + 1,
      type: "stat",
      title: `SLI, ${period}`,
      datasource: DATASOURCE,
      gridPos: gridPos(8, 6, 0, y + 1),
      fieldConfig: {
        defaults: { unit: "percentunit", decimals: 3, thresholds: steps(["red", null], ["green", slo.objective]) },
        overrides: [],
      },
      targets: targets([[periodRatio(slo), `SLI ${promDuration(slo.periodDays * 1440)}`]]),
      description: `Share of good events over the SLO period (objective ${slo.objective}).`,
      options: statOptions,
    },
    {
      id: id + 2,
      type: "stat",
      title: `Error budget remaining, ${period}`,
      datasource: DATASOURCE,
      gridPos: gridPos(8, 6, 6, y + 1),
      fieldConfig: {
        defaults: {
          unit: "percentunit",
          decimals: 1,
          thresholds: steps(["red", null], ["orange", 0], ["green", 0.25]),
        },
        overrides: [],
      },
      targets: targets([[`${periodRatio(slo)} / ${budget(slo)}`, "budget"]]),
      description: `1 - (bad share over ${period}) / (1 - ${slo.objective}). Below 0: the budget is spent.`,
      options: statOptions,
    },
    {
      id: id + 3,
      type: "timeseries",
      title: `SLI (${SLI_WINDOWS.map(promDuration).join(" and ")} windows)`,
      datasource: DATASOURCE,
      gridPos: gridPos(8, 12, 12, y + 1),
      fieldConfig: { defaults: { unit: "percentunit" }, overrides: [] },
      targets: targets(SLI_WINDOWS.map((m) => [`1 - ${recorded(slo, m)}`, promDuration(m)])),
    },
    {
      id: id + 4,
      type: "timeseries",
      title: `Burn rate per window (1 = budget spent exactly over ${period})`,
      datasource: DATASOURCE,
      gridPos: gridPos(8, 24, 0, y + 9),
      fieldConfig: {
        defaults: {
          thresholds: steps(["green", null], ["orange", 1], ["red", topFactor]),
          custom: { thresholdsStyle: { mode: "line" } },
        },
        overrides: [],
      },
      targets: targets(WINDOW_MINUTES.map((m) => [`${recorded(slo, m)} / ${budget(slo)}`, promDuration(m)])),
      description: burnDescription(slo),
    },
  ];
}

/** The dashboard as Grafana imports it (schema 39, a Prometheus datasource variable). */
export function sloDashboard(slos: readonly Slo[] = SLOS) {
  return {
    title: "VoiceAssist SLOs",
    uid: "voiceassist-slos",
    description:
      "Per SLO (src/ops/slos.ts): SLI, error budget remaining over the 30-day period and burn rates per window. " +
      "Burn rates read the recording rules of dashboards/prometheus/slo-rules.yml (load them into Prometheus); " +
      "the 30-day figures read the raw metrics. Objectives are the defaults of src/ops/slos.ts: SLO_OBJECTIVES " +
      "overrides them in the Worker, not here (GET /api/admin/slos shows the live ones).",
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    tags: ["voiceassist", "slo"],
    time: { from: "now-3d", to: "now" },
    refresh: "1m",
    timezone: "utc",
    templating: {
      list: [
        {
          name: "datasource",
          label: "Prometheus",
          type: "datasource",
          query: "prometheus",
          current: {},
          hide: 0,
          refresh: 1,
          regex: "",
          options: [],
        },
      ],
    },
    annotations: { list: [] },
    panels: slos.flatMap(sloRow),
  };
}

/** The file as Biome formats JSON: two-space indent, arrays of strings on one line. */
export function renderSloDashboard(dashboard: object = sloDashboard()): string {
  const text = JSON.stringify(dashboard, null, 2).replace(
    /\[\n\s*("[^"\n]*"(?:,\n\s*"[^"\n]*")*)\n\s*\]/g,
    (_, items) => `[${items.split(/,\n\s*/).join(", ")}]`,
  );
  return `${text}\n`;
}
