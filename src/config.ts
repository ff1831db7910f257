import { z } from "zod";
import { sloIds } from "./ops/slos.ts";

// One schema for every variable the Worker reads. Only zod and plain data are imported here, so the dev
// script (Node) validates the same schema before it starts wrangler.

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

const optionalUrl = optionalString.pipe(z.url().optional());

const csv = z
  .string()
  .default("")
  .transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export interface RateLimitRule {
  limit: number;
  windowSeconds: number;
}

const rateLimit = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx): RateLimitRule => {
      const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(v);
      const limit = Number(match?.[1]);
      const windowSeconds = Number(match?.[2]);
      if (!match || limit < 1 || windowSeconds < 1) {
        ctx.addIssue({ code: "custom", message: 'must be "count/seconds", e.g. "10/60"' });
        return z.NEVER;
      }
      return { limit, windowSeconds };
    });

export interface SigningKey {
  kid: string;
  secret: string;
}

function parseSigningKeys(value: string, ctx: z.RefinementCtx): SigningKey[] {
  const keys = value
    .split(",")
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf(":");
      return { kid: pair.slice(0, at), secret: pair.slice(at + 1) };
    });
  const bad = keys.find((k) => !/^[\w.-]{1,64}$/.test(k.kid) || k.secret.length < 32);
  if (keys.length === 0 || bad) {
    ctx.addIssue({
      code: "custom",
      message: "must be kid:secret pairs, comma-separated (kid [A-Za-z0-9_.-], secret 32+ chars)",
    });
    return z.NEVER;
  }
  if (new Set(keys.map((k) => k.kid)).size !== keys.length) {
    ctx.addIssue({ code: "custom", message: "has the same kid twice" });
    return z.NEVER;
  }
  return keys;
}

export interface ModelPrice {
  /** US dollars per million prompt tokens. */
  input: number;
  /** US dollars per million completion tokens. */
  output: number;
}

/** "id=objective" pairs, comma-separated, e.g. "api-availability=0.9995,search-latency=0.99". */
function parseObjectives(value: string, ctx: z.RefinementCtx): Record<string, number> {
  const objectives: Record<string, number> = {};
  for (const pair of value
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [id = "", raw = ""] = pair.split("=").map((p) => p.trim());
    const objective = Number(raw);
    if (!sloIds.includes(id) || !raw || !(objective > 0 && objective < 1)) {
      ctx.addIssue({
        code: "custom",
        message: `must be id=objective pairs with an objective between 0 and 1 exclusive and an id among ${sloIds.join(", ")}`,
      });
      return z.NEVER;
    }
    objectives[id] = objective;
  }
  return objectives;
}

const priceTable = z.record(z.string().min(1), z.strictObject({ input: z.number().min(0), output: z.number().min(0) }));

function parsePrices(value: string | undefined, ctx: z.RefinementCtx): Record<string, ModelPrice> {
  if (value === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  const result = priceTable.safeParse(parsed);
  if (!result.success) {
    ctx.addIssue({
      code: "custom",
      message: 'must be JSON like {"gpt-4o-mini": {"input": 0.15, "output": 0.6}} (USD per 1M tokens)',
    });
    return z.NEVER;
  }
  return result.data;
}

const variablesSchema = z
  .object({
    ENVIRONMENT: z.enum(["development", "test", "staging", "production"]).default("production"),
    LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
    APP_VERSION: z.string().default("0.1.0"),
    GIT_COMMIT: z.string().default("unknown"),
    DATABASE_URL: z
      .string({ error: "is required: a postgres:// connection string" })
      .trim()
      .pipe(z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// connection string" })),
    // host:port of the local Neon-compatible proxy (scripts/local-stack); unset in production.
    NEON_LOCAL_PROXY: optionalString.pipe(
      z
        .string()
        .regex(/^[\w.-]+:\d{1,5}$/, "must be host:port")
        .optional(),
    ),
    UPSTASH_REDIS_REST_URL: optionalUrl,
    UPSTASH_REDIS_REST_TOKEN: optionalString,
    QDRANT_URL: optionalUrl,
    QDRANT_API_KEY: optionalString,
    OPENAI_API_KEY: optionalString,
    OPENAI_BASE_URL: optionalUrl,
    SENTRY_DSN: optionalUrl,
    OPERATOR_TOKEN: optionalString.pipe(z.string().min(16, "must be at least 16 characters").optional()),
    CORS_ORIGINS: csv,
    MAX_BODY_BYTES: positiveInt(1_048_576),
    OUTBOUND_TIMEOUT_MS: positiveInt(10_000),
    // Identity: signing keys as "kid:secret" pairs, comma-separated; the first one signs, all verify.
    JWT_SIGNING_KEYS: z
      .string({ error: "is required: kid:secret pairs, comma-separated (secrets of 32+ characters)" })
      .transform((v, ctx) => parseSigningKeys(v, ctx)),
    JWT_ISSUER: z.string().default("voiceassist"),
    ACCESS_TOKEN_TTL_SECONDS: positiveInt(900),
    SESSION_IDLE_TIMEOUT_MINUTES: positiveInt(60),
    SESSION_ABSOLUTE_TIMEOUT_HOURS: positiveInt(24),
    PASSWORD_RESET_TTL_MINUTES: positiveInt(60),
    // Two refreshes racing with one token: the loser within this window is refused without
    // revoking the family; a reuse after it is treated as theft.
    REFRESH_REUSE_GRACE_SECONDS: z.coerce.number().int().min(0).default(5),
    API_KEY_MAX_DAYS: positiveInt(365),
    ADMIN_BOOTSTRAP_TOKEN: optionalString.pipe(z.string().min(24, "must be at least 24 characters").optional()),
    // Rate limits as "count/seconds".
    RATE_LIMIT_REGISTER: rateLimit("5/3600"),
    RATE_LIMIT_LOGIN: rateLimit("10/60"),
    RATE_LIMIT_REFRESH: rateLimit("30/60"),
    // Progressive login lockout: after THRESHOLD consecutive failures, locked for BASE seconds,
    // doubling with each further failure up to MAX.
    LOGIN_LOCKOUT_THRESHOLD: positiveInt(5),
    LOGIN_LOCKOUT_BASE_SECONDS: positiveInt(60),
    LOGIN_LOCKOUT_MAX_SECONDS: positiveInt(3600),
    // Knowledge base.
    KB_MAX_UPLOAD_BYTES: positiveInt(50 * 1024 * 1024),
    KB_MAX_IMPORT_BYTES: positiveInt(50 * 1024 * 1024),
    KB_CHUNK_SIZE: positiveInt(1_000), // characters
    KB_CHUNK_OVERLAP: z.coerce.number().int().min(0).default(150), // characters
    KB_INGEST_MAX_ATTEMPTS: positiveInt(5),
    EMBEDDING_MODEL: z.string().default("text-embedding-3-small"),
    EMBEDDING_DIMENSIONS: optionalString.pipe(z.coerce.number<string | undefined>().int().positive().optional()),
    EMBEDDING_BATCH_SIZE: positiveInt(96),
    EMBEDDING_TIMEOUT_MS: positiveInt(30_000),
    // Retrieval (docs/retrieval.md): BM25 k1 and b as Anserini/BEIR use them; RRF k as in the RRF paper.
    RETRIEVAL_BM25_K1: z.coerce.number().min(0).max(10).default(0.9),
    RETRIEVAL_BM25_B: z.coerce.number().min(0).max(1).default(0.4),
    RETRIEVAL_RRF_K: z.coerce.number().min(0).default(60),
    RETRIEVAL_WEIGHT_KEYWORD: z.coerce.number().min(0).default(1),
    // Unset: 1, or 0.02 for the local hashed embedder, which only repeats BM25's evidence more noisily.
    RETRIEVAL_WEIGHT_VECTOR: optionalString.pipe(z.coerce.number<string | undefined>().min(0).optional()),
    RETRIEVAL_TOP_K: z.coerce.number().int().min(1).max(100).default(10),
    RETRIEVAL_CANDIDATES: z.coerce.number().int().min(1).max(1_000).default(100), // per retriever
    // Reranking (docs/retrieval.md#reranking): none, or one chat completion judging the top results.
    RETRIEVAL_RERANKER: z.enum(["none", "llm"]).default("none"),
    RETRIEVAL_RERANK_MODEL: optionalString, // unset: CHAT_MODEL
    RETRIEVAL_RERANK_CANDIDATES: z.coerce.number().int().min(1).max(50).default(20), // judged; the rest keep their place
    RETRIEVAL_RERANK_TIMEOUT_MS: positiveInt(8_000), // the whole judgement, retries included
    // Answers (docs/answers.md). Unset CHAT_MODEL with no OPENAI_API_KEY: the local extractive composer.
    CHAT_MODEL: z.string().trim().min(1).default("gpt-4o-mini"),
    CHAT_TIMEOUT_MS: positiveInt(60_000), // a whole answer
    CHAT_FIRST_TOKEN_TIMEOUT_MS: positiveInt(15_000), // until the first streamed delta
    CHAT_MAX_RETRIES: z.coerce.number().int().min(0).max(5).default(2), // before the first delta only
    CHAT_MAX_OUTPUT_TOKENS: positiveInt(800),
    CHAT_HISTORY_TOKENS: z.coerce.number().int().min(0).default(1_500), // budget for earlier turns
    CHAT_CIRCUIT_FAILURES: positiveInt(5), // consecutive failures that open the circuit
    CHAT_CIRCUIT_COOLDOWN_SECONDS: positiveInt(30),
    RAG_SOURCES: z.coerce.number().int().min(1).max(20).default(6), // chunks given to the model
    // Minimum fused score (0-1) of a source: keeps out chunks only a weak vector match found.
    RAG_SCORE_FLOOR: z.coerce.number().min(0).max(1).default(0.05),
    RAG_MEDICAL_DISCLAIMER: z
      .string()
      .default(
        "This information supports, and does not replace, clinical judgement. Verify it against the cited sources and local protocols.",
      ),
    // What happens to PHI-like spans before text leaves for a cloud model.
    PHI_MODE: z.enum(["off", "redact", "block"]).default("redact"),
    // JSON {"model": {"input": USD per 1M tokens, "output": USD per 1M tokens}}, merged over the built-in table.
    LLM_PRICES: optionalString.transform((v, ctx) => parsePrices(v, ctx)),
    // Multi-level cache (docs/caching.md).
    CACHE_L1_MAX_ENTRIES: positiveInt(1_000),
    CACHE_TTL_EMBEDDING_SECONDS: positiveInt(86_400),
    CACHE_TTL_SEARCH_SECONDS: positiveInt(300),
    // Realtime voice (docs/voice.md).
    VOICE_REALTIME_MODEL: z.string().trim().min(1).default("gpt-realtime"),
    VOICE_MAX_SESSION_SECONDS: positiveInt(7_200),
    VOICE_IDLE_TIMEOUT_SECONDS: positiveInt(300),
    // Input audio kept for one turn; more is refused (the client must commit or clear).
    VOICE_MAX_BUFFER_SECONDS: positiveInt(120),
    // Upstream Realtime sessions last an hour at most: move to a fresh one before that, between turns.
    VOICE_UPSTREAM_REFRESH_SECONDS: positiveInt(3_300),
    // Feature flags (docs/flags.md). How long an isolate trusts its rule set before one KV version check.
    FLAGS_CACHE_TTL_SECONDS: z.coerce.number().min(0).max(300).default(5),
    // Share of evaluations recorded as exposure events (0 to 1).
    FLAGS_EXPOSURE_SAMPLE_RATE: z.coerce.number().min(0).max(1).default(0.1),
    // How often an isolate writes its exposure counts per flag, variant and day to Postgres.
    FLAGS_EXPOSURE_FLUSH_SECONDS: positiveInt(30),
    // SLOs and alerting (docs/slos.md): objectives over the defaults of src/ops/slos.ts, by SLO id.
    SLO_OBJECTIVES: z
      .string()
      .default("")
      .transform((v, ctx) => parseObjectives(v, ctx)),
    // Pages go to PagerDuty (Events API v2), tickets to the webhook; either falls back to the other.
    PAGERDUTY_ROUTING_KEY: optionalString,
    PAGERDUTY_EVENTS_URL: z.url().default("https://events.pagerduty.com/v2/enqueue"),
    // Routing keys of the next escalation levels, in order; past the last one an escalation goes to the webhook.
    ALERT_ESCALATION_ROUTING_KEYS: csv,
    ALERT_WEBHOOK_URL: optionalUrl,
    ALERT_WEBHOOK_SECRET: optionalString,
    // An unacknowledged page goes to the next level after this long.
    ALERT_ESCALATE_AFTER_MINUTES: positiveInt(15),
  })
  .superRefine((v, ctx) => {
    if (Boolean(v.UPSTASH_REDIS_REST_URL) !== Boolean(v.UPSTASH_REDIS_REST_TOKEN)) {
      const missing = v.UPSTASH_REDIS_REST_URL ? "UPSTASH_REDIS_REST_TOKEN" : "UPSTASH_REDIS_REST_URL";
      ctx.addIssue({
        code: "custom",
        path: [missing],
        message: "is required when the other UPSTASH_REDIS_REST_* is set",
      });
    }
    if (v.KB_CHUNK_OVERLAP >= v.KB_CHUNK_SIZE) {
      ctx.addIssue({ code: "custom", path: ["KB_CHUNK_OVERLAP"], message: "must be smaller than KB_CHUNK_SIZE" });
    }
    if (v.RETRIEVAL_RERANKER === "llm" && !v.OPENAI_API_KEY) {
      ctx.addIssue({
        code: "custom",
        path: ["OPENAI_API_KEY"],
        message: "is required when RETRIEVAL_RERANKER is llm (set it, or RETRIEVAL_RERANKER=none)",
      });
    }
    if (v.ENVIRONMENT === "production" && v.NEON_LOCAL_PROXY) {
      ctx.addIssue({ code: "custom", path: ["NEON_LOCAL_PROXY"], message: "must not be set in production" });
    }
  });

export type Config = z.output<typeof variablesSchema>;

/** Names of every configuration variable, for the dev script and the docs. */
export const configVariableNames = Object.keys(variablesSchema.shape) as (keyof Config)[];

export interface ConfigIssue {
  variable: string;
  message: string;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

export function parseConfig(source: Record<string, unknown>): ConfigResult {
  const vars: Record<string, unknown> = {};
  for (const name of configVariableNames) {
    if (typeof source[name] === "string") vars[name] = source[name];
  }
  const result = variablesSchema.safeParse(vars);
  if (result.success) return { ok: true, config: result.data };
  return {
    ok: false,
    issues: result.error.issues.map((i) => ({
      variable: String(i.path[0] ?? "environment"),
      message: i.code === "invalid_type" && vars[String(i.path[0])] === undefined ? "is required" : i.message,
    })),
  };
}

export function describeConfigIssues(issues: ConfigIssue[]): string {
  return issues.map((i) => `${i.variable} ${i.message}`).join("; ");
}
