// Writes the outputs generated from the SLO definitions (src/ops/slos.ts): the Prometheus rules
// (src/ops/prometheus-rules.ts) to dashboards/prometheus/slo-rules.yml and the Grafana SLO dashboard
// (src/ops/slo-dashboard.ts) to dashboards/slos.json. test/node/slo-rules.test.ts fails when either is stale.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RULES_PATH, renderRules } from "../src/ops/prometheus-rules.ts";
import { DASHBOARD_PATH, renderSloDashboard } from "../src/ops/slo-dashboard.ts";

const outputs: [path: string, text: string][] = [
  [RULES_PATH, renderRules()],
  [DASHBOARD_PATH, renderSloDashboard()],
];
for (const [path, text] of outputs) {
  writeFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), text);
  console.log(`wrote ${path}`);
}
