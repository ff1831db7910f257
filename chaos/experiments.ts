// The experiments, as data (docs/chaos.md says what each proved). Durations have two profiles: `full` for
// `npm run chaos` (the 60 s faults) and `ci` for test/node/chaos.test.ts (shorter faults that still
// cover every operation kind during the fault, and the same invariants).
import type { Experiment, Probe } from "./model.ts";

const steadyState: Probe[] = [
  { name: "health", kind: "http", path: "/health", status: 200 },
  { name: "ready (Postgres answers, migrations current)", kind: "http", path: "/ready", status: 200 },
  // ai_provider is not required: the OpenAI stand-in has no GET /v1/models, which that check calls.
  { name: "health/detailed", kind: "health", components: ["postgres", "redis", "vector_store", "queue"] },
  { name: "metrics served", kind: "metric", metric: "http_requests_total" },
  { name: "flag evaluation", kind: "http", path: "/api/flags/evaluate", auth: "user", status: 200, maxMs: 3_000 },
];

const everyday = { signIn: 1, evaluateFlags: 5, toggleFlag: 1, sendMessage: 2, upload: 1 };
const durable = [
  "uploads-settle",
  "uploads-unique",
  "messages-kept",
  "audit-kept",
  "audit-chain",
  "flag-versions-monotonic",
  "thread-replay",
  "no-500",
] as const;

export const experiments: Experiment[] = [
  {
    id: "database-failure",
    title: "Postgres unreachable during uploads, answers, sign-ins and flag evaluation",
    needs: ["faults"],
    steadyState,
    workload: { mix: everyday, minOperations: { full: 1_000, ci: 1_000 }, concurrency: 10, ratePerSecond: 20 },
    method: [
      {
        action: { kind: "proxy", target: "postgres", fault: { mode: "refuse" } },
        startMs: [3_000, 8_000],
        durationMs: { full: 60_000, ci: 25_000 },
      },
    ],
    rollbacks: [{ kind: "proxy", target: "postgres", fault: { mode: "pass" } }],
    invariants: [...durable],
  },
  {
    id: "redis-unavailable",
    title: "The L2 cache and revocation store (Upstash over Redis) gone",
    needs: ["faults", "redis"],
    steadyState,
    workload: { mix: everyday, minOperations: { full: 1_000, ci: 1_000 }, concurrency: 10, ratePerSecond: 20 },
    method: [
      {
        action: { kind: "proxy", target: "redis", fault: { mode: "refuse" } },
        startMs: [3_000, 8_000],
        durationMs: { full: 60_000, ci: 25_000 },
      },
    ],
    rollbacks: [{ kind: "proxy", target: "redis", fault: { mode: "pass" } }],
    invariants: [...durable],
  },
  {
    id: "ai-provider-outage",
    title: "The OpenAI-compatible server answers 500, then 429, then hangs",
    needs: ["faults", "openai"],
    steadyState,
    workload: {
      mix: { signIn: 1, evaluateFlags: 2, sendMessage: 6, upload: 1 },
      minOperations: { full: 1_000, ci: 1_000 },
      concurrency: 10,
      ratePerSecond: 20,
    },
    method: [
      {
        action: { kind: "proxy", target: "openai", fault: { mode: "http-status", status: 500 } },
        startMs: [3_000, 6_000],
        durationMs: { full: 25_000, ci: 10_000 },
      },
      {
        action: { kind: "proxy", target: "openai", fault: { mode: "http-status", status: 429, retryAfterSeconds: 1 } },
        startMs: [30_000, 30_000],
        durationMs: { full: 20_000, ci: 8_000 },
      },
      {
        action: { kind: "proxy", target: "openai", fault: { mode: "blackhole" } },
        startMs: [52_000, 52_000],
        durationMs: { full: 15_000, ci: 8_000 },
      },
    ],
    rollbacks: [{ kind: "proxy", target: "openai", fault: { mode: "pass" } }],
    invariants: [...durable, "circuit-opens-and-closes"],
  },
  {
    id: "queue-redelivery",
    title: "The ingestion consumer crashes mid-document; messages are redelivered, lost ones requeued",
    needs: ["faults"],
    steadyState,
    workload: {
      mix: { upload: 3, evaluateFlags: 4, signIn: 2, sendMessage: 1 },
      minOperations: { full: 1_000, ci: 1_000 },
      concurrency: 10,
      ratePerSecond: 20,
    },
    method: [
      {
        // Mid-document: the consumer's queries hang until their timeout, the attempt throws, the message is retried.
        action: { kind: "proxy", target: "postgres", fault: { mode: "blackhole" } },
        startMs: [4_000, 8_000],
        durationMs: { full: 30_000, ci: 20_000 },
      },
    ],
    requeueStuck: true,
    rollbacks: [{ kind: "proxy", target: "postgres", fault: { mode: "pass" } }],
    invariants: [...durable, "stuck-documents-requeued"],
  },
  {
    id: "durable-object-eviction",
    title: "Chat rooms and the flag hub reset mid-session (their memory lost, their sockets and streams closed)",
    needs: ["eviction"],
    steadyState,
    workload: {
      mix: { chatTurn: 4, evaluateFlags: 3, toggleFlag: 2, signIn: 1 },
      minOperations: { full: 1_000, ci: 1_000 },
      concurrency: 10,
      ratePerSecond: 20,
    },
    method: [
      {
        action: { kind: "evict", objects: ["chat-room", "flag-hub"], everyMs: 2_000 },
        startMs: [3_000, 6_000],
        durationMs: { full: 60_000, ci: 25_000 },
      },
    ],
    rollbacks: [],
    invariants: [...durable, "chat-reconnect-replay"],
  },
  {
    id: "network-latency",
    title: "+500 ms (± 200 ms jitter) on every Postgres and Redis round trip",
    needs: ["faults", "redis"],
    steadyState,
    workload: { mix: everyday, minOperations: { full: 1_000, ci: 1_000 }, concurrency: 8, ratePerSecond: 20 },
    method: [
      {
        action: { kind: "proxy", target: "postgres", fault: { mode: "latency", ms: 500, jitterMs: 200 } },
        startMs: [3_000, 6_000],
        durationMs: { full: 60_000, ci: 25_000 },
      },
      {
        action: { kind: "proxy", target: "redis", fault: { mode: "latency", ms: 500, jitterMs: 200 } },
        startMs: [3_000, 6_000],
        durationMs: { full: 60_000, ci: 25_000 },
      },
    ],
    rollbacks: [
      { kind: "proxy", target: "postgres", fault: { mode: "pass" } },
      { kind: "proxy", target: "redis", fault: { mode: "pass" } },
    ],
    invariants: [...durable],
  },
  {
    id: "resource-exhaustion",
    title: "CPU pressure on every core plus a memory-heavy upload burst",
    needs: [],
    steadyState,
    workload: {
      // About 3 % of the operations are 512 KB uploads (some 30, 16 MB): a burst the ingestion backlog clears
      // within the settle window; at a quarter of them (240, 123 MB) it did not.
      mix: { bigUpload: 0.2, upload: 1, evaluateFlags: 3, signIn: 1, sendMessage: 1 },
      minOperations: { full: 1_000, ci: 1_000 },
      concurrency: 10,
      ratePerSecond: 20,
    },
    method: [
      {
        action: { kind: "cpu-burn", workers: 2 },
        startMs: [3_000, 6_000],
        durationMs: { full: 60_000, ci: 25_000 },
      },
    ],
    rollbacks: [],
    invariants: [...durable],
  },
];
