// The service level objectives, as data: the one source of the Worker's evaluator (ledger.ts, burn-rate.ts),
// the Prometheus rules (prometheus-rules.ts), the admin routes and docs/runbooks/slos.md.
import type { MetricName } from "../metrics/catalog.ts";

/** Label matchers in Prometheus regex syntax (fully anchored, as `=~` is). */
export type Matchers = Readonly<Record<string, string>>;

/**
 * Good events / valid events, read from one catalog metric: a counter whose `bad` labels mark failures,
 * or a histogram whose samples at or under `under` seconds (one of its bucket bounds) are good.
 */
export type Sli =
  | { kind: "errors"; metric: MetricName; select: Matchers; bad: Matchers }
  | { kind: "latency"; metric: MetricName; select: Matchers; under: number };

export interface Slo {
  id: string;
  description: string;
  sli: Sli;
  /** Share of valid events that must be good over the period, e.g. 0.999. */
  objective: number;
  periodDays: number;
  /** Heading in docs/runbooks/slos.md that says what to do when this SLO burns. */
  runbook: string;
}

const PERIOD_DAYS = 30;
const API = "/(api|v1)/.*";
const route = (template: string): Matchers => ({ route: template });

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
});

/** Every SLO with its default objective; SLO_OBJECTIVES overrides objectives by id. */
export const SLOS: readonly Slo[] = [
  {
    id: "api-availability",
    description: "Requests to /api/* and /v1/* not answered with a 5xx",
    sli: { kind: "errors", metric: "http_requests_total", select: { route: API }, bad: { status: "5.." } },
    objective: 0.999,
    periodDays: PERIOD_DAYS,
    runbook: "api-availability",
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
  latency(
    "voice-response",
    "Voice responses whose first output comes within 1 s of the user's turn",
    "voice_time_to_first_seconds",
    {},
    1,
    0.95,
  ),
];

export const sloIds = SLOS.map((slo) => slo.id);

/** The SLOs with objectives from SLO_OBJECTIVES (id → objective) applied. */
export const withObjectives = (overrides: Readonly<Record<string, number>>): Slo[] =>
  SLOS.map((slo) => ({ ...slo, objective: overrides[slo.id] ?? slo.objective }));
