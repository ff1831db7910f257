// Every metric the platform records, declared once. Analytics Engine columns, the Prometheus
// exposition and the docs (docs/metrics.md) all follow this table; add new metrics here.

interface CounterDefinition {
  type: "counter";
  help: string;
  /** Fixed order: Analytics Engine blobs and Prometheus labels follow it. */
  labelNames: readonly string[];
}

/** A value that is set, not added to: the latest sample wins (e.g. active sessions right now). */
interface GaugeDefinition {
  type: "gauge";
  help: string;
  labelNames: readonly string[];
}

interface HistogramDefinition {
  type: "histogram";
  help: string;
  labelNames: readonly string[];
  /** Upper bounds in ascending order; +Inf is implied. Moving or removing one means a new metric name; adding one is safe (older bounds keep their meaning). */
  buckets: readonly number[];
}

export type MetricDefinition = CounterDefinition | GaugeDefinition | HistogramDefinition;

// Edge API latencies: a cache hit is a few ms, a streamed LLM answer can take seconds. 0.05 and 0.3 are the
// latency SLO thresholds (src/ops/slos.ts), 1.5 a common one: an SLO can only count "under" a bucket bound.
const httpDurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 1.5, 2.5, 5, 10] as const;

export const metricCatalog = {
  http_requests_total: {
    type: "counter",
    help: "HTTP requests answered, by method, route template and status.",
    labelNames: ["method", "route", "status"],
  },
  http_request_duration_seconds: {
    type: "histogram",
    help: "Time from receiving an HTTP request to its response headers, in seconds.",
    labelNames: ["method", "route", "status"],
    buckets: httpDurationBuckets,
  },
  cron_job_runs_total: {
    type: "counter",
    help: "Cron job runs, by job and outcome (ok or error).",
    labelNames: ["job", "outcome"],
  },
  cron_job_duration_seconds: {
    type: "histogram",
    help: "Cron job run time in seconds.",
    labelNames: ["job"],
    buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900],
  },
  queue_messages_total: {
    type: "counter",
    help: "Queue messages handled, by queue and outcome (ack, retry, or dead_letter: moved to the dead-letter queue after its last attempt).",
    labelNames: ["queue", "outcome"],
  },
  auth_registrations_total: {
    type: "counter",
    help: "Accounts created through POST /api/auth/register.",
    labelNames: [],
  },
  auth_logins_total: {
    type: "counter",
    help: "Login attempts by outcome (success, failure, deactivated).",
    labelNames: ["outcome"],
  },
  auth_refreshes_total: {
    type: "counter",
    help: "Refresh attempts by outcome (rotated, raced, reused, invalid).",
    labelNames: ["outcome"],
  },
  auth_active_sessions: {
    type: "gauge",
    help: "Sessions that can still be refreshed (not revoked, within both timeouts), set by the 5-minute cron.",
    labelNames: [],
  },
  auth_daily_active_users: {
    type: "gauge",
    help: "Distinct users with an authenticated request today (UTC), set by the 5-minute cron.",
    labelNames: [],
  },
  auth_monthly_active_users: {
    type: "gauge",
    help: "Distinct users with an authenticated request in the last 30 days (UTC, today included), set by the 5-minute cron.",
    labelNames: [],
  },
  auth_session_duration_seconds: {
    type: "histogram",
    help: "How long a session lasted, from sign-in to its end, by how it ended (logout, reuse, password_change, password_reset, deactivated, deleted).",
    labelNames: ["end"],
    buckets: [60, 300, 900, 1800, 3600, 14_400, 28_800, 86_400, 604_800, 2_592_000],
  },
  auth_refresh_reuse_total: {
    type: "counter",
    help: "Spent refresh tokens presented again: each revoked its whole session.",
    labelNames: [],
  },
  rate_limited_total: {
    type: "counter",
    help: "Requests refused with 429, by rule (register, login, refresh, lockout for a locked account, cost_cap for a user over COST_USER_DAILY_CAP_USD).",
    labelNames: ["rule"],
  },
  auth_lockouts_total: {
    type: "counter",
    help: "Login lockouts started: failures that reached the threshold and locked the account.",
    labelNames: [],
  },
  audit_events_total: {
    type: "counter",
    help: "Audit rows appended, by action (auth.login, admin.user.role_changed ...) and outcome (success, failure, denied).",
    labelNames: ["action", "outcome"],
  },
  audit_chain_verifications_total: {
    type: "counter",
    help: "Audit hash-chain verifications (GET /api/admin/audit/verify), by outcome (intact, broken).",
    labelNames: ["outcome"],
  },
  audit_chain_intact: {
    type: "gauge",
    help: "Result of the last audit hash-chain verification: 1 intact, 0 broken.",
    labelNames: [],
  },
  health_check_status: {
    type: "gauge",
    help: "Last /health/detailed probe of each component: 1 ok, 0 down, -1 disabled (not configured).",
    labelNames: ["component"],
  },
  health_check_duration_seconds: {
    type: "histogram",
    help: "Time each /health/detailed probe took, by component, in seconds (probes time out after 3 s).",
    labelNames: ["component"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3, 5],
  },
  kb_uploads_total: {
    type: "counter",
    help: "Documents accepted for ingestion, by detected format (pdf, docx, html, markdown, text) and route.",
    labelNames: ["format", "via"],
  },
  kb_ingest_stage_duration_seconds: {
    type: "histogram",
    help: "Time spent in each ingestion stage (fetch, extract, chunk, embed, write).",
    labelNames: ["stage"],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  },
  kb_chunks_per_document: {
    type: "histogram",
    help: "Chunks produced per ingested document.",
    labelNames: [],
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
  },
  kb_ingest_failures_total: {
    type: "counter",
    help: "Ingestion attempts that failed, by reason (extract, embed, store, missing_source, index_mismatch, internal) and whether the document is now failed (final) or retried.",
    labelNames: ["reason", "final"],
  },
  kb_document_ready_seconds: {
    type: "histogram",
    help: "From a document's upload to its final state, by outcome (ready, failed), in seconds.",
    labelNames: ["outcome"],
    // 300 is the ingestion-ready SLO threshold (src/ops/slos.ts).
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21_600],
  },
  kb_dead_letters_total: {
    type: "counter",
    help: "Messages moved to a dead-letter queue after their last attempt, by queue.",
    labelNames: ["queue"],
  },
  kb_documents: {
    type: "gauge",
    help: "Documents in the knowledge base by status (queued, processing, ready, failed), set by the 5-minute cron.",
    labelNames: ["status"],
  },
  kb_chunks: {
    type: "gauge",
    help: "Chunks stored in the knowledge base, set by the 5-minute cron.",
    labelNames: [],
  },
  queue_lag_seconds: {
    type: "histogram",
    help: "Time from enqueueing a message to its delivery to the consumer, by queue.",
    labelNames: ["queue"],
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
  },
  metrics_series_dropped_total: {
    type: "counter",
    help: "Events not aggregated because the series limit of the metrics aggregator was reached.",
    labelNames: ["metric"],
  },
  kb_search_total: {
    type: "counter",
    help: "Knowledge-base searches, by mode (hybrid, keyword, vector) and outcome (ok, empty, degraded: a requested retriever was skipped, error).",
    labelNames: ["mode", "outcome"],
  },
  kb_search_duration_seconds: {
    type: "histogram",
    help: "Time spent in each search stage (embed, keyword, vector, fuse, load, rerank when a reranker is configured).",
    labelNames: ["stage"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  },
  cache_lookups_total: {
    type: "counter",
    help: "Cache lookups by namespace (embedding, search...), tier (l1 isolate memory, l2 Redis) and outcome (hit, miss, error).",
    labelNames: ["namespace", "tier", "outcome"],
  },
  cache_loads_total: {
    type: "counter",
    help: "Cache misses that ran the loader, by namespace and outcome (ok, error, shared: joined a load already running).",
    labelNames: ["namespace", "outcome"],
  },
  rag_queries_total: {
    type: "counter",
    help: "Questions answered, by channel (query, conversation, websocket, voice) and outcome (answered, no_sources, blocked, cancelled, error).",
    labelNames: ["channel", "outcome"],
  },
  rag_citations_per_answer: {
    type: "histogram",
    help: "Valid citations in each finished answer.",
    labelNames: [],
    buckets: [0, 1, 2, 3, 5, 8, 13],
  },
  rag_invalid_citations_total: {
    type: "counter",
    help: "Citation markers that named no real source and were dropped from the answer.",
    labelNames: [],
  },
  answer_feedback_total: {
    type: "counter",
    help: "Ratings of answers stored through POST /api/conversations/{id}/messages/{message_id}/feedback, by rating (up, down); a replaced rating counts again.",
    labelNames: ["rating"],
  },
  rag_stage_duration_seconds: {
    type: "histogram",
    help: "Time spent in each answer stage (embed, retrieve, rerank, first_token, total).",
    labelNames: ["stage"],
    // 1.5 is the answer-first-token SLO threshold (src/ops/slos.ts).
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30],
  },
  llm_calls_total: {
    type: "counter",
    help: "Model calls, by feature (answers, embeddings, reranker, voice), provider (openai, local), model and outcome (ok, timeout, cancelled, error).",
    labelNames: ["feature", "provider", "model", "outcome"],
  },
  llm_tokens_total: {
    type: "counter",
    help: "Tokens used by model calls, by feature, model and kind (prompt, completion).",
    labelNames: ["feature", "model", "kind"],
  },
  llm_cost_usd_total: {
    type: "counter",
    help: "Cost of model calls in US dollars, from the price table (LLM_PRICES), by feature and model.",
    labelNames: ["feature", "model"],
  },
  phi_detections_total: {
    type: "counter",
    help: "PHI-like spans found in text bound for a cloud model, by type (name, dob, mrn, ssn, phone, email, address) and mode (redact, block).",
    labelNames: ["type", "mode"],
  },
  voice_sessions_active: {
    type: "gauge",
    help: "Voice sessions connected now (status active), set by the 5-minute cron.",
    labelNames: [],
  },
  voice_sessions_started_total: {
    type: "counter",
    help: "Voice sessions connected, by mode (local, upstream).",
    labelNames: ["mode"],
  },
  voice_sessions_ended_total: {
    type: "counter",
    help: "Voice sessions ended, by reason (client_closed, idle_timeout, max_duration, audio_flood, upstream_failed, credential_ended).",
    labelNames: ["reason"],
  },
  voice_connect_seconds: {
    type: "histogram",
    help: "From a voice socket's upgrade request to session.created (the session is usable), by mode (local, upstream).",
    labelNames: ["mode"],
    // 0.4 and 0.5 are the voice-connect SLO thresholds (src/ops/slos.ts).
    buckets: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5],
  },
  voice_first_transcript_seconds: {
    type: "histogram",
    help: "From the end of the user's speech (commit or speech stopped) to the first transcript of it, by mode (local, upstream).",
    labelNames: ["mode"],
    // 0.5 and 0.7 are the voice-first-transcript SLO thresholds (src/ops/slos.ts).
    buckets: [0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2.5, 5, 10],
  },
  voice_time_to_first_seconds: {
    type: "histogram",
    help: "From the end of the user's turn (commit or response.create) to the response's first output, by kind (text, audio).",
    labelNames: ["kind"],
    // 0.8 and 1 are the voice-response SLO thresholds (src/ops/slos.ts).
    buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 0.8, 1, 1.5, 2.5, 5, 10],
  },
  voice_turn_latency_seconds: {
    type: "histogram",
    help: "From the end of the user's turn to response.done, by outcome (completed, cancelled, failed).",
    labelNames: ["outcome"],
    buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 60],
  },
  voice_barge_ins_total: {
    type: "counter",
    help: "Responses interrupted because the user started speaking.",
    labelNames: [],
  },
  voice_errors_total: {
    type: "counter",
    help: "Error events sent to voice clients, by code.",
    labelNames: ["code"],
  },
  flag_writes_total: {
    type: "counter",
    help: "Flag rule-set writes that changed something, by action (created, updated, toggled, set, imported_merge ...).",
    labelNames: ["action"],
  },
  flag_publish_failures_total: {
    type: "counter",
    help: "Committed flag writes whose snapshot could not be handed to the FlagHub (the reconcile cron republishes).",
    labelNames: [],
  },
  flag_snapshot_fallbacks_total: {
    type: "counter",
    help: "Rule-set refreshes that could not read KV, by what was served instead (last_good, database, unavailable).",
    labelNames: ["served"],
  },
  flag_rules_broken_total: {
    type: "counter",
    help: "Flags whose rules could not be compiled into a new rule set (they evaluate to their default, reason ERROR).",
    labelNames: [],
  },
  flag_propagation_seconds: {
    type: "histogram",
    help: "From a committed flag write to its snapshot reaching the change stream (the FlagHub), in seconds.",
    labelNames: [],
    // 5 is the flag-propagation SLO threshold (src/ops/slos.ts).
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  },
  flag_evaluations_total: {
    type: "counter",
    help: "Flags evaluated, by route (evaluate: POST /api/flags/evaluate, ofrep: OFREP single and bulk): one request can evaluate many.",
    labelNames: ["via"],
  },
  build_info: {
    type: "gauge",
    help: "Always 1, labelled with the version and commit that serve (APP_VERSION, GIT_COMMIT).",
    labelNames: ["version", "commit"],
  },
  uptime_seconds: {
    type: "gauge",
    help: "Seconds since the aggregator first answered GET /metrics for the serving version and commit: how long this deployment has run, to within one scrape interval.",
    labelNames: [],
  },
  cost_budget_spent_ratio: {
    type: "gauge",
    help: "Spend over its budget (COST_BUDGET_DAILY_USD, COST_BUDGET_MONTHLY_USD) by period (day, month), set each minute by the alert manager.",
    labelNames: ["period"],
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof metricCatalog;

type LabelName<N extends MetricName> = (typeof metricCatalog)[N]["labelNames"][number];

/** One observation: a counter increment or a histogram sample. Unknown names and labels do not compile. */
export type MetricEvent = {
  [N in MetricName]: { name: N; labels: { [L in LabelName<N>]: string }; value: number };
}[MetricName];

export const isMetricName = (name: unknown): name is MetricName =>
  typeof name === "string" && Object.hasOwn(metricCatalog, name);

/** Why an event does not match the catalog, or undefined when it does (for data that crossed a boundary). */
export function metricEventProblem(event: unknown): string | undefined {
  if (typeof event !== "object" || event === null) return "a metric event must be an object";
  const { name, labels, value } = event as Record<string, unknown>;
  if (!isMetricName(name)) return `unknown metric ${JSON.stringify(name)}: add it to src/metrics/catalog.ts`;
  const definition: MetricDefinition = metricCatalog[name];
  if (typeof labels !== "object" || labels === null) return `${name}: labels must be an object`;
  const expected = definition.labelNames;
  const unknown = Object.keys(labels).filter((label) => !expected.includes(label));
  if (unknown.length) return `${name}: unknown label(s) ${unknown.join(", ")}; expected ${expected.join(", ")}`;
  const missing = expected.filter((label) => typeof (labels as Record<string, unknown>)[label] !== "string");
  if (missing.length) return `${name}: label(s) ${missing.join(", ")} must be strings`;
  if (typeof value !== "number" || !Number.isFinite(value)) return `${name}: value must be a finite number`;
  if (definition.type === "counter" && value < 0) return `${name}: a counter cannot decrease`;
  return undefined;
}

/** Label values in catalog order (the order of Analytics Engine blobs and Prometheus labels). */
export const labelValues = (event: MetricEvent): string[] =>
  metricCatalog[event.name].labelNames.map((label) => (event.labels as Record<string, string>)[label] as string);
