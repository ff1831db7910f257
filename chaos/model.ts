// The shape of a chaos experiment, after Chaos Toolkit's format: a steady-state hypothesis (probes with
// tolerances), a method (faults injected and removed on a seeded schedule), rollbacks that always run, and
// invariants checked once the system has recovered. Experiments are data (chaos/experiments.ts); the runner
// (chaos/runner.ts) interprets them.
import type { Fault } from "../scripts/local-stack/fault-proxy.ts";

/** Where a fault proxy sits: before the Neon proxy, the Upstash server, or the OpenAI-compatible stand-in. */
export type FaultTarget = "postgres" | "redis" | "openai";

/** A steady-state probe: what to read, and what counts as within tolerance. */
export type Probe =
  | { name: string; kind: "http"; path: string; auth?: "operator" | "user"; status: number; maxMs?: number }
  /** GET /health/detailed: these components must be "ok" (others are reported, not required). */
  | { name: string; kind: "health"; components: string[] }
  | { name: string; kind: "metric"; metric: string };

/** One step of the method. Offsets are ranges: the seeded schedule picks a point in each. */
export type FaultAction =
  | { kind: "proxy"; target: FaultTarget; fault: Fault }
  /** CPU pressure on the machine: busy-loop processes of the runner's own, one per core. */
  | { kind: "cpu-burn"; workers: number }
  /**
   * Every `everyMs`, the experiment's chat rooms (one per conversation) and the flag hub are reset through
   * POST /api/admin/chaos/evict, which the target opens with CHAOS_EVICTION=on.
   */
  | { kind: "evict"; objects: ("chat-room" | "flag-hub")[]; everyMs: number };

export interface ScheduledFault {
  action: FaultAction;
  /** Start after the workload has run this long (ms), somewhere in [min, max]. */
  startMs: [number, number];
  /** How long the fault holds, per profile. */
  durationMs: { full: number; ci: number };
}

export type OperationKind =
  | "signIn"
  | "evaluateFlags"
  | "toggleFlag"
  | "sendMessage"
  /** A message over the chat WebSocket, reconnecting when the socket closes before the answer. */
  | "chatTurn"
  | "upload"
  | "bigUpload";

export type InvariantName =
  | "uploads-settle"
  | "uploads-unique"
  | "messages-kept"
  | "audit-kept"
  | "audit-chain"
  | "flag-versions-monotonic"
  | "thread-replay"
  | "no-500"
  | "circuit-opens-and-closes"
  | "stuck-documents-requeued"
  | "chat-reconnect-replay";

export interface Experiment {
  id: string;
  title: string;
  /** What the experiment needs from the target; missing needs skip it with a reason. */
  needs: ("faults" | "redis" | "openai" | "eviction")[];
  steadyState: Probe[];
  workload: {
    /** Relative weights of the operation kinds. */
    mix: Partial<Record<OperationKind, number>>;
    /** Operations to attempt at least (the workload runs on after the fault until it has). */
    minOperations: { full: number; ci: number };
    concurrency: number;
    /** Operations per second the clients aim at together (at most; a slow server gets fewer). */
    ratePerSecond: number;
  };
  method: ScheduledFault[];
  /** The requeue job, for lost messages: documents still queued/processing after recovery are aged and requeued. */
  requeueStuck?: boolean;
  /** Always run, whatever happened. Every proxy back to pass and every burner stopped are implied. */
  rollbacks: FaultAction[];
  invariants: InvariantName[];
}

export type Profile = "full" | "ci";
