// The human-readable report of a run (`npm run chaos`); `--json` prints the reports themselves.
import type { ExperimentReport } from "./runner.ts";

const seconds = (ms: number | null) => (ms === null ? "not within 180 s" : `${(ms / 1000).toFixed(1)} s`);

export function formatReport(reports: ExperimentReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    lines.push(
      `== ${r.id} (${r.profile}, seed ${r.seed}): ${r.status.toUpperCase()}${r.reason ? `: ${r.reason}` : ""}`,
    );
    lines.push(`   ${r.title}`);
    if (r.status === "skipped") continue;
    const probes = (list: ExperimentReport["steadyStateBefore"]) =>
      list.map((p) => `${p.ok ? "ok" : "FAIL"} ${p.name} [${p.value}]`).join("; ");
    lines.push(`   steady state before: ${probes(r.steadyStateBefore)}`);
    for (const f of r.faults) {
      lines.push(
        `   fault ${f.action}: ${(f.injectedAtMs / 1000).toFixed(1)} s to ${(f.removedAtMs / 1000).toFixed(1)} s`,
      );
    }
    if (r.evictions) lines.push(`   Durable Objects reset: ${r.evictions}`);
    lines.push(`   time to recover: ${seconds(r.recoveryMs)}`);
    if (r.ingestRetries) lines.push(`   kb-ingest deliveries retried (redelivered): ${r.ingestRetries}`);
    const o = r.operations;
    lines.push(`   operations: ${o.attempted} attempted, ${o.acknowledged} acknowledged, ${o.lost} lost`);
    for (const [kind, counts] of Object.entries(o.byKind)) {
      const c = counts as { attempted: number; acknowledged: number };
      const byPhase = ["before", "during", "after"]
        .map((phase) => {
          const s = r.statuses[`${kind}:${phase}`];
          return s
            ? `${phase} ${Object.entries(s)
                .map(([code, n]) => `${code}x${n}`)
                .join(" ")}`
            : undefined;
        })
        .filter(Boolean)
        .join(" | ");
      lines.push(`     ${kind}: ${c.attempted} attempted, ${c.acknowledged} acknowledged (${byPhase})`);
    }
    lines.push(`   steady state after: ${probes(r.steadyStateAfter)}`);
    for (const i of r.invariants) lines.push(`   ${i.ok ? "ok  " : "FAIL"} ${i.name}: ${i.detail}`);
    lines.push(`   took ${(r.durationMs / 1000).toFixed(0)} s`);
  }
  const failed = reports.filter((r) => r.status === "failed" || r.status === "aborted").length;
  const lost = reports.reduce((n, r) => n + r.operations.lost, 0);
  lines.push(`${reports.length} experiments: ${failed} failed, ${lost} operations lost`);
  return lines.join("\n");
}
