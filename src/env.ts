import type { MetricsAggregator } from "../workers/metrics-aggregator.ts";
import { type Config, type ConfigResult, parseConfig } from "./config.ts";

/** The Worker's bindings, as declared in wrangler.toml. Variables are read through Config. */
export interface Env {
  FLAGS_KV: KVNamespace;
  CACHE_KV: KVNamespace;
  DOCUMENTS: R2Bucket;
  KB_INGEST: Queue<unknown>;
  ANALYTICS: AnalyticsEngineDataset;
  METRICS: DurableObjectNamespace<MetricsAggregator>;
  [variable: string]: unknown;
}

const requiredBindings = ["FLAGS_KV", "CACHE_KV", "DOCUMENTS", "KB_INGEST", "ANALYTICS", "METRICS"] as const;

// Bindings and variables never change within an isolate, so validate once per env object.
const loaded = new WeakMap<object, ConfigResult>();

/** Validates bindings and variables once per isolate; the result names every bad variable. */
export function loadConfig(env: Env): ConfigResult {
  let result = loaded.get(env);
  if (!result) {
    const missing = requiredBindings
      .filter((name) => env[name] === undefined)
      .map((name) => ({ variable: name, message: "binding is missing (declare it in wrangler.toml)" }));
    const parsed = parseConfig(env);
    result = missing.length ? { ok: false, issues: [...missing, ...(parsed.ok ? [] : parsed.issues)] } : parsed;
    loaded.set(env, result);
  }
  return result;
}

export type { Config };
