// The service level objectives, as data: the one source of the Worker's evaluator (ledger.ts, burn-rate.ts),
// the Prometheus rules (prometheus-rules.ts), the SLO dashboard (slo-dashboard.ts), the admin routes and
// docs/runbooks/slos.md.
import type { MetricName } from "../metrics/catalog.ts";
import type { Severity } from "./burn-rate.ts";

/** Label matchers in Prometheus regex syntax (fully anchored, as `=~` is). */
export type Matchers = Readonly<Record<string, string>>;

/**
 * Good events / valid events, read from one catalog metric: a counter whose `bad` labels mark failures,
 * or a histogram whose samples at or under `under` seconds (one of its bucket bounds) are good, when they
 * also match `good` (e.g. a document that ended ready, not failed).
 */
export type Sli =
  | { kind: "errors"; metric: MetricName; select: Matchers; bad: Matchers }
  | { kind: "latency"; metric: MetricName; select: Matchers; under: number; good?: Matchers };

export interface Slo {
  id: string;
  description: string;
  sli: Sli;
  /** Share of valid events that must be good over the period, e.g. 0.999. */
  objective: number;
  periodDays: number;
  /** Heading in docs/runbooks/slos.md that says what to do when this SLO burns. */
  runbook: string;
  /** The alerts it can raise: both, or tickets only for a warning threshold beside a critical one. */
  severities: readonly Severity[];
}

const PERIOD_DAYS = 30;
const API = "/(api|v1)/.*";
const route = (template: string): Matchers => ({ route: template });

const BOTH: readonly Severity[] = ["page", "ticket"];

const latency = (
  id: string,
  description: string,
  metric: MetricName,
  select: Matchers,
  under: number,
  objective: number,
): Slo => ({
  id,
  description,
  sli: { kind: "latency", metric, select, under },
  objective,
  periodDays: PERIOD_DAYS,
  runbook: id,
  severities: BOTH,
});

/**
 * A voice latency with the original's two thresholds: the critical one pages (and tickets), the warning one,
 * its own SLO `<id>-warning` with the same runbook, only raises tickets.
 */
const voiceLatency = (
  id: string,
  description: (seconds: number) => string,
  metric: MetricName,
  thresholds: { warning: number; critical: number },
): Slo[] => {
  const critical = latency(id, description(thresholds.critical), metric, {}, thresholds.critical, 0.95);
  const warning = latency(`${id}-warning`, description(thresholds.warning), metric, {}, thresholds.warning, 0.95);
  return [critical, { ...warning, runbook: id, severities: ["ticket"] }];
};

const ms = (seconds: number) => `${Math.round(seconds * 1000)} ms`;

/** Every SLO with its default objective; SLO_OBJECTIVES overrides objectives by id. */
export const SLOS: readonly Slo[] = [
  {
    id: "api-availability",
    description: "Requests to /api/* and /v1/* not answered with a 5xx",
    sli: { kind: "errors", metric: "http_requests_total", select: { route: API }, bad: { status: "5.." } },
    objective: 0.999,
    periodDays: PERIOD_DAYS,
    runbook: "api-availability",
    severities: BOTH,
  },
  latency(
    "flag-evaluation-latency",
    "Flag evaluations answered within 50 ms",
    "http_request_duration_seconds",
    route("/api/flags/evaluate"),
    0.05,
    0.95,
  ),
  latency(
    "search-latency",
    "Searches answered within 300 ms",
    "http_request_duration_seconds",
    route("/api/kb/search"),
    0.3,
    0.95,
  ),
  latency(
    "answer-first-token",
    "Answers whose first token streams within 1.5 s",
    "rag_stage_duration_seconds",
    { stage: "first_token" },
    1.5,
    0.95,
  ),
  latency(
    "sign-in-latency",
    "Sign-ins answered within 300 ms",
    "http_request_duration_seconds",
    route("/api/auth/login"),
    0.3,
    0.95,
  ),
  ...voiceLatency(
    "voice-connect",
    (s) => `Voice sessions usable (session.created) within ${ms(s)} of the upgrade request`,
    "voice_connect_seconds",
    { warning: 0.4, critical: 0.5 },
  ),
  ...voiceLatency(
    "voice-first-transcript",
    (s) => `User turns whose first transcript comes within ${ms(s)} of the end of speech`,
    "voice_first_transcript_seconds",
    { warning: 0.5, critical: 0.7 },
  ),
  ...voiceLatency(
    "voice-response",
    (s) => `Voice responses whose first output comes within ${ms(s)} of the user's turn`,
    "voice_time_to_first_seconds",
    { warning: 0.8, critical: 1 },
  ),
  {
    id: "ingestion-ready",
    description: "Uploaded documents ready (not failed) within 5 minutes of the upload",
    sli: { kind: "latency", metric: "kb_document_ready_seconds", select: {}, under: 300, good: { outcome: "ready" } },
    objective: 0.99,
    periodDays: PERIOD_DAYS,
    runbook: "ingestion-ready",
    severities: BOTH,
  },
  {
    id: "ingestion-dead-letters",
    description: "Ingestion queue deliveries not moved to the dead-letter queue (the dead-letter queue stays empty)",
    sli: {
      kind: "errors",
      metric: "queue_messages_total",
      select: { queue: "kb-ingest" },
      bad: { outcome: "dead_letter" },
    },
    objective: 0.999,
    periodDays: PERIOD_DAYS,
    runbook: "ingestion-dead-letters",
    severities: BOTH,
  },
  latency(
    "flag-propagation",
    "Flag writes that reach the change stream (the FlagHub) within 5 s",
    "flag_propagation_seconds",
    {},
    5,
    0.99,
  ),
];

export const sloIds = SLOS.map((slo) => slo.id);

/** The SLOs with objectives from SLO_OBJECTIVES (id → objective) applied. */
export const withObjectives = (overrides: Readonly<Record<string, number>>): Slo[] =>
  SLOS.map((slo) => ({ ...slo, objective: overrides[slo.id] ?? slo.objective }));
