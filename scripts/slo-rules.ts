// Writes the Prometheus SLO rules (src/ops/prometheus-rules.ts) to dashboards/prometheus/slo-rules.yml.
// test/node/slo-rules.test.ts fails when the committed file is stale.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RULES_PATH, renderRules } from "../src/ops/prometheus-rules.ts";

const target = fileURLToPath(new URL(`../${RULES_PATH}`, import.meta.url));
writeFileSync(target, renderRules());
console.log(`wrote ${RULES_PATH}`);
