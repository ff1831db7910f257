import { z } from "zod";
import type { AlertManager } from "../workers/alert-manager.ts";
import type { ChatRoom } from "../workers/chat-room.ts";
import type { FlagHub } from "../workers/flag-hub.ts";
import type { MetricsAggregator } from "../workers/metrics-aggregator.ts";
import type { RateLimiter } from "../workers/rate-limiter.ts";
import type { VoiceSession } from "../workers/voice-session.ts";
import { type Config, type ConfigIssue, type ConfigResult, parseConfig } from "./config.ts";

/** The Worker's bindings, as declared in wrangler.toml. Variables are read through Config. */
export interface Env {
  FLAGS_KV: KVNamespace;
  DOCUMENTS: R2Bucket;
  KB_INGEST: Queue<unknown>;
  KB_INGEST_DLQ: Queue<unknown>;
  ANALYTICS: AnalyticsEngineDataset;
  METRICS: DurableObjectNamespace<MetricsAggregator>;
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  CHAT_ROOM: DurableObjectNamespace<ChatRoom>;
  VOICE_SESSION: DurableObjectNamespace<VoiceSession>;
  FLAG_HUB: DurableObjectNamespace<FlagHub>;
  ALERTS: DurableObjectNamespace<AlertManager>;
  [variable: string]: unknown;
}

const binding = (kind: string) =>
  z.custom<object>(
    (v) => typeof v === "object" && v !== null,
    `${kind} binding is missing (declare it in wrangler.toml)`,
  );

/** Every binding the platform uses; presence is all a Worker can check before first use. */
const bindingsSchema = z.object({
  FLAGS_KV: binding("KV namespace"),
  DOCUMENTS: binding("R2 bucket"),
  KB_INGEST: binding("Queue"),
  KB_INGEST_DLQ: binding("Queue"),
  ANALYTICS: binding("Analytics Engine dataset"),
  METRICS: binding("Durable Object namespace"),
  RATE_LIMITER: binding("Durable Object namespace"),
  CHAT_ROOM: binding("Durable Object namespace"),
  VOICE_SESSION: binding("Durable Object namespace"),
  FLAG_HUB: binding("Durable Object namespace"),
  ALERTS: binding("Durable Object namespace"),
});

// Bindings and variables never change within an isolate, so validate once per env object.
const loaded = new WeakMap<object, ConfigResult>();

/** Validates bindings and variables once per isolate; the result names every bad one. */
export function loadConfig(env: Env): ConfigResult {
  let result = loaded.get(env);
  if (!result) {
    const bindings = bindingsSchema.safeParse(env);
    const missing: ConfigIssue[] = bindings.success
      ? []
      : bindings.error.issues.map((i) => ({ variable: String(i.path[0]), message: i.message }));
    const parsed = parseConfig(env);
    result = missing.length ? { ok: false, issues: [...missing, ...(parsed.ok ? [] : parsed.issues)] } : parsed;
    loaded.set(env, result);
  }
  return result;
}

/** The config, for cron jobs and consumers that have no request to answer with BAD_ENVIRONMENT. */
export function requireConfig(env: Env): Config {
  const loaded = loadConfig(env);
  if (!loaded.ok) throw new Error(`bad environment: ${loaded.issues.map((i) => i.variable).join(", ")}`);
  return loaded.config;
}

export type { Config };
