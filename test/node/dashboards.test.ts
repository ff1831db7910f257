import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { metricCatalog } from "../../src/metrics/catalog.ts";

const DIR = join(import.meta.dirname, "../../dashboards");
const SUFFIXES = /_(bucket|sum|count)$/;

describe("dashboards", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".json"));

  it("exist", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)("%s only queries metrics from the catalog", (file) => {
    const dashboard = JSON.parse(readFileSync(join(DIR, file), "utf8")) as {
      panels: { targets: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(0);
    for (const expr of exprs) {
      // Metric names end in a unit or a histogram suffix; label matchers are stripped first.
      const names = expr.replace(/\{[^}]*\}/g, "").match(/[a-z_]+_(total|seconds|bucket|sum|count)\b/g) ?? [];
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) {
        expect(name, expr).toMatch(/^voiceassist_/);
        expect(Object.keys(metricCatalog), expr).toContain(name.replace(/^voiceassist_/, "").replace(SUFFIXES, ""));
      }
    }
  });
});
