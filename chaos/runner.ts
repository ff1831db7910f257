// Runs experiments (chaos/experiments.ts) against a target (chaos/target.ts): steady state before, the
// workload with the method's faults on a seeded schedule, rollbacks (always), time to recover, settling,
// steady state after, invariants. Returns one report per experiment (chaos/report.ts prints them).
import { setTimeout as sleep } from "node:timers/promises";
import { request, seededRandom } from "./client.ts";
import { burnCpu, describeAction, evictRepeatedly } from "./faults.ts";
import { createFixture } from "./fixture.ts";
import { checkInvariant, type InvariantResult, settleDocuments } from "./invariants.ts";
import type { Experiment, OperationKind, Probe, Profile } from "./model.ts";
import type { Target } from "./target.ts";
import { type Actor, type Ledger, newLedger, type Phase, runOperation, uploadDocument } from "./workload.ts";

export interface ProbeResult {
  name: string;
  ok: boolean;
  value: string;
}

export interface ExperimentReport {
  id: string;
  title: string;
  profile: Profile;
  seed: number;
  status: "passed" | "failed" | "skipped" | "aborted";
  reason?: string;
  startedAt: string;
  durationMs: number;
  steadyStateBefore: ProbeResult[];
  steadyStateAfter: ProbeResult[];
  faults: { action: string; injectedAtMs: number; removedAtMs: number }[];
  /** Durable Objects reset by evict faults. */
  evictions: number;
  /** kb-ingest deliveries that failed and were retried (redelivered) during the experiment, from /metrics. */
  ingestRetries: number | null;
  /** From the last fault's removal until every steady-state probe passed again. */
  recoveryMs: number | null;
  operations: { attempted: number; acknowledged: number; lost: number; byKind: Record<string, unknown> };
  statuses: Record<string, Record<string, number>>;
  invariants: InvariantResult[];
}

const SETTLE_MS = 240_000;

async function probe(target: Target, p: Probe, userToken: string): Promise<ProbeResult> {
  if (p.kind === "http") {
    const token = p.auth === "operator" ? target.operatorToken : p.auth === "user" ? userToken : undefined;
    const json = p.path === "/api/flags/evaluate" ? { context: {} } : undefined;
    const reply = await request(target.url, p.path, { token, json, timeoutMs: 10_000 });
    const ok = reply.status === p.status && (p.maxMs === undefined || reply.ms <= p.maxMs);
    return { name: p.name, ok, value: `${reply.status} in ${reply.ms} ms` };
  }
  if (p.kind === "health") {
    const reply = await request(target.url, "/health/detailed", { token: target.operatorToken, timeoutMs: 10_000 });
    const components = (reply.json?.components ?? {}) as Record<string, { status?: string }>;
    const notOk = Object.entries(components).filter(([, c]) => c.status !== "ok");
    const ok = reply.status !== 0 && p.components.every((name) => components[name]?.status === "ok");
    const status = String(reply.json?.status ?? reply.status);
    return {
      name: p.name,
      ok,
      value: notOk.length ? `${status} (${notOk.map(([n, c]) => `${n} ${c.status}`).join(", ")})` : status,
    };
  }
  const reply = await request(target.url, "/metrics", { token: target.operatorToken, timeoutMs: 10_000 });
  const present = reply.status === 200 && reply.text.includes(p.metric);
  return {
    name: p.name,
    ok: present,
    value: reply.status === 200 ? `${p.metric} ${present ? "present" : "absent"}` : `${reply.status}`,
  };
}

async function steadyState(target: Target, experiment: Experiment, token: string): Promise<ProbeResult[]> {
  return Promise.all(experiment.steadyState.map((p) => probe(target, p, token)));
}

function pickKind(mix: Partial<Record<OperationKind, number>>, random: () => number): OperationKind {
  const entries = Object.entries(mix) as [OperationKind, number][];
  const total = entries.reduce((n, [, w]) => n + w, 0);
  let x = random() * total;
  for (const [kind, weight] of entries) {
    x -= weight;
    if (x < 0) return kind;
  }
  return entries[0]?.[0] as OperationKind;
}

export async function runExperiment(
  target: Target,
  admin: Actor,
  experiment: Experiment,
  options: { profile: Profile; seed: number; log?: (line: string) => void },
): Promise<ExperimentReport> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const report: ExperimentReport = {
    id: experiment.id,
    title: experiment.title,
    profile: options.profile,
    seed: options.seed,
    status: "passed",
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    steadyStateBefore: [],
    steadyStateAfter: [],
    faults: [],
    evictions: 0,
    ingestRetries: null,
    recoveryMs: null,
    operations: { attempted: 0, acknowledged: 0, lost: 0, byKind: {} },
    statuses: {},
    invariants: [],
  };
  const missing = experiment.needs.filter(
    (need) =>
      (need === "faults" && target.faultTargets.length === 0) ||
      (need === "redis" && !target.redis) ||
      (need === "openai" && !target.openai) ||
      (need === "eviction" && !target.eviction),
  );
  if (missing.length) {
    report.status = "skipped";
    report.reason = `the target offers no ${missing.join(", ")}`;
    return report;
  }

  const fixture = await createFixture(target, admin, experiment);
  const userToken = (fixture.users[0] as Actor).token;
  report.steadyStateBefore = await steadyState(target, experiment, userToken);
  if (!report.steadyStateBefore.every((p) => p.ok)) {
    report.status = "aborted";
    report.reason = "the steady-state hypothesis did not hold before the method";
    report.durationMs = Date.now() - started;
    return report;
  }
  log(`${experiment.id}: steady state holds; workload and faults start (seed ${options.seed})`);

  const retriesBefore = await ingestRetries(target);
  const random = seededRandom(options.seed);
  const ledger: Ledger = newLedger();
  const schedule = experiment.method.map((step) => ({
    step,
    startMs: step.startMs[0] + Math.floor(random() * (step.startMs[1] - step.startMs[0] + 1)),
    durationMs: step.durationMs[options.profile],
  }));
  const faultEndMs = Math.max(...schedule.map((s) => s.startMs + s.durationMs));
  const workloadStart = Date.now();
  let phase: Phase = "before";
  let stopWorkload = false;
  const minOperations = experiment.workload.minOperations[options.profile];
  const attempted = () => Object.values(ledger.attempted).reduce((n, v) => n + v, 0);
  let afterFaultSince = 0;
  const clients = Array.from({ length: experiment.workload.concurrency }, async (_, client) => {
    const pick = seededRandom(options.seed * 31 + client);
    // Paced, as real clients are: without it, fast failures during a fault multiply the operations (and the
    // uploads left to ingest afterwards) several times over.
    const intervalMs = (experiment.workload.concurrency / experiment.workload.ratePerSecond) * 1000;
    while (!stopWorkload) {
      const started = Date.now();
      await runOperation(pickKind(experiment.workload.mix, pick), fixture, ledger, client, pick, () => phase);
      await sleep(Math.max(0, started + intervalMs - Date.now()));
    }
  });

  const stopBurners: (() => void)[] = [];
  const rollback = async () => {
    for (const stop of stopBurners) stop();
    for (const action of experiment.rollbacks) {
      if (action.kind === "proxy") await target.setFault(action.target, { mode: "pass" }).catch(() => {});
    }
  };
  try {
    const timers = schedule.map(async ({ step, startMs, durationMs }) => {
      await sleep(Math.max(0, workloadStart + startMs - Date.now()));
      const injectedAt = Date.now();
      phase = "during";
      let stop = () => {};
      if (step.action.kind === "proxy") await target.setFault(step.action.target, step.action.fault);
      else if (step.action.kind === "cpu-burn") {
        stop = burnCpu(step.action.workers);
        stopBurners.push(stop);
      }
      log(`${experiment.id}: injected ${describeAction(step.action)} for ${durationMs / 1000} s`);
      if (step.action.kind === "evict") report.evictions += await evictRepeatedly(fixture, step.action, durationMs);
      else await sleep(durationMs);
      if (step.action.kind === "proxy") {
        // Only lift what this step set: a later step on the same target may already hold it.
        const later = schedule.some((s) => s.startMs > startMs && s.startMs <= Date.now() - workloadStart);
        if (!later) await target.setFault(step.action.target, { mode: "pass" });
      } else if (step.action.kind === "cpu-burn") stop();
      report.faults.push({
        action: describeAction(step.action),
        injectedAtMs: injectedAt - workloadStart,
        removedAtMs: Date.now() - workloadStart,
      });
    });
    await Promise.all(timers);
  } finally {
    await rollback();
  }
  phase = "after";
  afterFaultSince = Date.now();
  log(
    `${experiment.id}: faults removed after ${((afterFaultSince - workloadStart) / 1000).toFixed(0)} s; measuring recovery`,
  );

  // Time to recover: every steady-state probe passes again.
  for (;;) {
    const probes = await steadyState(target, experiment, userToken);
    if (probes.every((p) => p.ok)) {
      report.recoveryMs = Date.now() - afterFaultSince;
      break;
    }
    if (Date.now() - afterFaultSince > 180_000) break;
    await sleep(500);
  }
  // The workload runs on until it has attempted its operations, and at least 10 s past the fault.
  while (attempted() < minOperations || Date.now() - afterFaultSince < 10_000) await sleep(250);
  stopWorkload = true;
  await Promise.all(clients);
  log(`${experiment.id}: ${attempted()} operations; retrying unanswered uploads and settling`);

  // A client whose upload got no answer sends the same bytes again: it gets the first document (200) or a new one.
  for (const { key, text } of ledger.unansweredUploads) {
    const reply = await uploadDocument(fixture, key, text);
    if ((reply.status === 202 || reply.status === 200) && reply.json?.id)
      ledger.documents.set(String(reply.json.id), key);
  }
  let documents = await settleDocuments(
    fixture,
    [...ledger.documents.keys()],
    experiment.requeueStuck ? 60_000 : SETTLE_MS,
  );
  let requeued = 0;
  if (experiment.requeueStuck) {
    const stuck = [...documents]
      .filter(([, s]) => s && s.status !== "ready" && s.status !== "failed")
      .map(([id]) => id);
    if (stuck.length) {
      // They count as stuck after KB_REQUEUE_STUCK_AFTER_MINUTES (1 on the local target) without progress.
      log(`${experiment.id}: ${stuck.length} documents not final; firing kb-requeue-stuck once they are stuck`);
      await sleep(61_000);
      requeued = await requeueStuck(target);
      documents = await settleDocuments(fixture, [...ledger.documents.keys()], SETTLE_MS);
    }
  }

  const retriesAfter = await ingestRetries(target);
  report.ingestRetries = retriesBefore === null || retriesAfter === null ? null : retriesAfter - retriesBefore;
  report.steadyStateAfter = await steadyState(target, experiment, userToken);
  for (const name of experiment.invariants) {
    report.invariants.push(
      await checkInvariant(name, fixture, ledger, documents, requeued).catch((error: Error) => ({
        name,
        ok: false,
        detail: `could not be checked: ${error.message}`,
        lost: 0,
      })),
    );
  }
  const acknowledged = Object.values(ledger.acknowledged).reduce((n, v) => n + v, 0);
  const lost = report.invariants.reduce((n, r) => n + r.lost, 0);
  report.operations = {
    attempted: attempted(),
    acknowledged,
    lost,
    byKind: Object.fromEntries(
      Object.keys(ledger.attempted).map((kind) => [
        kind,
        { attempted: ledger.attempted[kind], acknowledged: ledger.acknowledged[kind] ?? 0 },
      ]),
    ),
  };
  report.statuses = ledger.statuses;
  const passed =
    report.steadyStateAfter.every((p) => p.ok) && report.invariants.every((r) => r.ok) && lost === 0 && faultEndMs > 0;
  report.status = passed ? "passed" : "failed";
  report.durationMs = Date.now() - started;
  return report;
}

/** voiceassist_queue_messages_total{queue="kb-ingest",outcome="retry"} from /metrics (0 before the first), or null unreadable. */
async function ingestRetries(target: Target): Promise<number | null> {
  const reply = await request(target.url, "/metrics", { token: target.operatorToken, timeoutMs: 10_000 });
  if (reply.status !== 200) return null;
  const sample =
    /^voiceassist_queue_messages_total\{(?=[^}]*queue="kb-ingest")(?=[^}]*outcome="retry")[^}]*\} (\S+)$/m.exec(
      reply.text,
    );
  return sample ? Number(sample[1]) : 0;
}

/** Fires the every-5-minutes crons (kb-requeue-stuck among them) now; 1 when wrangler ran them. */
async function requeueStuck(target: Target): Promise<number> {
  const reply = await request(target.url, `/cdn-cgi/local/scheduled?cron=${encodeURIComponent("*/5 * * * *")}`);
  return reply.status === 200 ? 1 : 0;
}
