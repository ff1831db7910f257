// Which SLO events a metric event is: the Worker's reading of each SLI of slos.ts, label by label as
// Prometheus reads the same definitions (regex matchers are fully anchored there too).
import type { MetricEvent } from "../metrics/catalog.ts";
import type { Matchers, Slo } from "./slos.ts";

export interface SloEvent {
  slo: string;
  good: number;
  valid: number;
}

const compiled = new Map<string, RegExp>();
const anchored = (pattern: string) => {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`);
    compiled.set(pattern, re);
  }
  return re;
};

const matches = (labels: Readonly<Record<string, string>>, matchers: Matchers) =>
  Object.entries(matchers).every(([label, pattern]) => anchored(pattern).test(labels[label] ?? ""));

/** The good and valid counts one metric event adds to each SLO it belongs to. */
export function sloEventsOf(slos: readonly Slo[], event: MetricEvent): SloEvent[] {
  const labels = event.labels as Readonly<Record<string, string>>;
  const found: SloEvent[] = [];
  for (const { id, sli } of slos) {
    if (sli.metric !== event.name || !matches(labels, sli.select)) continue;
    if (sli.kind === "errors")
      found.push({ slo: id, valid: event.value, good: matches(labels, sli.bad) ? 0 : event.value });
    else {
      const good = event.value <= sli.under && (!sli.good || matches(labels, sli.good));
      found.push({ slo: id, valid: 1, good: good ? 1 : 0 });
    }
  }
  return found;
}
