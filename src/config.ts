// Over 400 lines by design: one schema, one described entry per variable (docs/configuration.md is generated from it).
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
const optionalDollars = optionalString.pipe(z.coerce.number<string | undefined>().positive().optional());

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

/**
 * Every variable with its validation, default and description (`.describe()`, or `.meta()` with `secret: true` for
 * the credentials a deployer sets with `wrangler secret put`). scripts/docs-config.ts renders it into
 * docs/configuration.md.
 */
export const variablesSchema = z
  .object({
    ENVIRONMENT: z
      .enum(["development", "test", "staging", "production"])
      .default("production")
      .describe("Deployment environment; reported to Sentry and in alerts. `npm run dev` sets `development`."),
    LOG_LEVEL: z
      .enum(["debug", "info", "warn", "error"])
      .default("info")
      .describe("Lowest level of log lines written."),
    APP_VERSION: z
      .string()
      .default("0.1.0")
      .describe("Version reported by `/health`, the OpenAPI document and Sentry."),
    GIT_COMMIT: z
      .string()
      .default("unknown")
      .describe("Commit reported by `/health` and Sentry; set at deploy (`--var GIT_COMMIT:…`)."),
    DATABASE_URL: z
      .string({ error: "is required: a postgres:// connection string" })
      .trim()
      .pipe(z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// connection string" }))
      .meta({
        description:
          "Postgres connection string (`postgres://`; Neon's pooled one in production). `npm run dev` uses local PGlite.",
        secret: true,
      }),
    NEON_LOCAL_PROXY: optionalString
      .pipe(
        z
          .string()
          .regex(/^[\w.-]+:\d{1,5}$/, "must be host:port")
          .optional(),
      )
      .describe(
        "`host:port` of the local Neon-compatible proxy (scripts/local-stack: WebSocket `/v1`, HTTP `/sql`). Refused in production.",
      ),
    UPSTASH_REDIS_REST_URL: optionalUrl.describe(
      "Upstash Redis REST URL of the L2 cache; unset turns L2 off. Needs `UPSTASH_REDIS_REST_TOKEN`.",
    ),
    UPSTASH_REDIS_REST_TOKEN: optionalString.meta({
      description: "Upstash REST token; required when `UPSTASH_REDIS_REST_URL` is set.",
      secret: true,
    }),
    QDRANT_URL: optionalUrl.describe("Qdrant endpoint; unset keeps vectors in Postgres (pgvector)."),
    QDRANT_API_KEY: optionalString.meta({ description: "Qdrant API key (Qdrant Cloud).", secret: true }),
    OPENAI_API_KEY: optionalString.meta({
      description:
        "OpenAI (or compatible) API key. Unset: local providers (hashed embedder, extractive composer, voice answered in the Worker).",
      secret: true,
    }),
    OPENAI_BASE_URL: optionalUrl.describe("OpenAI-compatible base URL; unset: OpenAI's."),
    SENTRY_DSN: optionalUrl.meta({ description: "Sentry DSN; unset: no error reporting.", secret: true }),
    OPERATOR_TOKEN: optionalString.pipe(z.string().min(16, "must be at least 16 characters").optional()).meta({
      description:
        "Bearer token (16+ characters) for `/health/detailed` and `/metrics`; unset: those routes refuse. `npm run dev` generates one.",
      secret: true,
    }),
    CORS_ORIGINS: csv.describe("Origins allowed by CORS, comma-separated; empty: none."),
    MAX_BODY_BYTES: positiveInt(1_048_576).describe("Request body limit in bytes (413 beyond)."),
    OUTBOUND_TIMEOUT_MS: positiveInt(10_000).describe("Default timeout of an outbound call."),
    JWT_SIGNING_KEYS: z
      .string({ error: "is required: kid:secret pairs, comma-separated (secrets of 32+ characters)" })
      .transform((v, ctx) => parseSigningKeys(v, ctx))
      .meta({
        description:
          "Access-token signing keys: `kid:secret` pairs, comma-separated (kid `[A-Za-z0-9_.-]`, secret 32+ characters); the first signs, all verify. `npm run dev` generates one in `.data/`.",
        secret: true,
      }),
    JWT_ISSUER: z.string().default("voiceassist").describe("`iss` of access tokens."),
    ACCESS_TOKEN_TTL_SECONDS: positiveInt(900).describe("Access token lifetime."),
    SESSION_IDLE_TIMEOUT_MINUTES: positiveInt(60).describe("A session unused this long can no longer refresh."),
    SESSION_ABSOLUTE_TIMEOUT_HOURS: positiveInt(24).describe("A session ends this long after login."),
    PASSWORD_RESET_TTL_MINUTES: positiveInt(60).describe("Lifetime of an admin-issued password reset token."),
    // Two refreshes racing with one token: the loser within this window is refused without
    // revoking the family; a reuse after it is treated as theft.
    REFRESH_REUSE_GRACE_SECONDS: z.coerce
      .number()
      .int()
      .min(0)
      .default(5)
      .describe(
        "A second refresh with the same token within this window gets 409 without revoking the session; later, it is treated as theft.",
      ),
    API_KEY_MAX_DAYS: positiveInt(365).describe("Longest API key lifetime."),
    ADMIN_BOOTSTRAP_TOKEN: optionalString.pipe(z.string().min(24, "must be at least 24 characters").optional()).meta({
      description:
        "Bearer token (24+ characters) for `POST /api/admin/bootstrap`, which creates the first admin; unset: bootstrap off. Remove it after.",
      secret: true,
    }),
    RATE_LIMIT_REGISTER: rateLimit("5/3600").describe("Registrations per IP, as `count/seconds`."),
    RATE_LIMIT_LOGIN: rateLimit("10/60").describe("Login attempts per IP and email, as `count/seconds`."),
    RATE_LIMIT_REFRESH: rateLimit("30/60").describe("Token refreshes per IP, as `count/seconds`."),
    LOGIN_LOCKOUT_THRESHOLD: positiveInt(5).describe("Consecutive failed logins (per IP and email) before a lockout."),
    LOGIN_LOCKOUT_BASE_SECONDS: positiveInt(60).describe(
      "First lockout; it doubles with each further failure up to `LOGIN_LOCKOUT_MAX_SECONDS`.",
    ),
    LOGIN_LOCKOUT_MAX_SECONDS: positiveInt(3600).describe("Longest lockout."),
    KB_MAX_UPLOAD_BYTES: positiveInt(50 * 1024 * 1024).describe("Largest document upload body (413 beyond)."),
    KB_MAX_IMPORT_BYTES: positiveInt(50 * 1024 * 1024).describe("Largest knowledge-base import body (413 beyond)."),
    KB_CHUNK_SIZE: positiveInt(1_000).describe("Chunk size in characters."),
    KB_CHUNK_OVERLAP: z.coerce
      .number()
      .int()
      .min(0)
      .default(150)
      .describe("Overlap of consecutive chunks in characters; must be smaller than `KB_CHUNK_SIZE`."),
    KB_INGEST_MAX_ATTEMPTS: positiveInt(5).describe(
      "Ingestion attempts before a document fails and its message goes to the dead-letter queue.",
    ),
    CHAOS_EVICTION: z
      .enum(["off", "on"])
      .default("off")
      .describe(
        "`on` opens `POST /api/admin/chaos/evict` (admins reset a chat, voice or flag-hub Durable Object, for the durable-object-eviction chaos experiment); `off` answers it 404. Never `on` in production.",
      ),
    KB_REQUEUE_STUCK_AFTER_MINUTES: positiveInt(30).describe(
      "Minutes without progress after which a queued or processing document is taken as lost and queued again by the every-5-minutes job; longer than any healthy backlog wait plus an ingestion.",
    ),
    EMBEDDING_MODEL: z
      .string()
      .default("text-embedding-3-small")
      .describe("OpenAI embedding model (with `OPENAI_API_KEY`)."),
    EMBEDDING_DIMENSIONS: optionalString
      .pipe(z.coerce.number<string | undefined>().int().positive().optional())
      .describe("Embedding dimension, for other OpenAI-compatible models or shortened vectors; unset: the model's."),
    EMBEDDING_BATCH_SIZE: positiveInt(96).describe("Texts per embedding request."),
    EMBEDDING_TIMEOUT_MS: positiveInt(30_000).describe("Timeout of one embedding request."),
    // Retrieval (docs/retrieval.md): BM25 k1 and b as Anserini/BEIR use them; RRF k as in the RRF paper.
    RETRIEVAL_BM25_K1: z.coerce.number().min(0).max(10).default(0.9).describe("BM25 `k1` of the keyword arm."),
    RETRIEVAL_BM25_B: z.coerce.number().min(0).max(1).default(0.4).describe("BM25 `b` of the keyword arm."),
    RETRIEVAL_RRF_K: z.coerce.number().min(0).default(60).describe("`k` of reciprocal rank fusion."),
    RETRIEVAL_WEIGHT_KEYWORD: z.coerce.number().min(0).default(1).describe("Fusion weight of the keyword arm."),
    // The local hashed embedder only repeats BM25's evidence more noisily, hence its small weight.
    RETRIEVAL_WEIGHT_VECTOR: optionalString
      .pipe(z.coerce.number<string | undefined>().min(0).optional())
      .describe("Fusion weight of the vector arm; unset: 1, or 0.02 for the local hashed embedder."),
    RETRIEVAL_TOP_K: z.coerce.number().int().min(1).max(100).default(10).describe("Results a search returns."),
    RETRIEVAL_CANDIDATES: z.coerce
      .number()
      .int()
      .min(1)
      .max(1_000)
      .default(100)
      .describe("Candidates each retriever contributes to fusion."),
    RETRIEVAL_RERANKER: z
      .enum(["none", "llm"])
      .default("none")
      .describe(
        "Second stage (docs/retrieval.md#reranking): `none` keeps the fused order; `llm`: one chat completion judges the top results (needs `OPENAI_API_KEY`).",
      ),
    RETRIEVAL_RERANK_MODEL: optionalString.describe("Chat model of the `llm` reranker; unset: `CHAT_MODEL`."),
    RETRIEVAL_RERANK_CANDIDATES: z.coerce
      .number()
      .int()
      .min(1)
      .max(50)
      .default(20)
      .describe("Top results the reranker judges; the rest keep their place after them."),
    RETRIEVAL_RERANK_TIMEOUT_MS: positiveInt(8_000).describe(
      "Deadline of the whole judgement, retries included; past it the fused order stands.",
    ),
    CHAT_MODEL: z
      .string()
      .trim()
      .min(1)
      .default("gpt-4o-mini")
      .describe("Chat model of answers (with `OPENAI_API_KEY`; without it, the local extractive composer answers)."),
    CHAT_TIMEOUT_MS: positiveInt(60_000).describe("Deadline of a whole answer."),
    CHAT_FIRST_TOKEN_TIMEOUT_MS: positiveInt(15_000).describe("Deadline of the first streamed delta."),
    CHAT_MAX_RETRIES: z.coerce
      .number()
      .int()
      .min(0)
      .max(5)
      .default(2)
      .describe("Retries of a chat call, before the first delta only."),
    CHAT_MAX_OUTPUT_TOKENS: positiveInt(800).describe("Largest completion of an answer, in tokens."),
    CHAT_HISTORY_TOKENS: z.coerce
      .number()
      .int()
      .min(0)
      .default(1_500)
      .describe("Token budget for earlier turns of a conversation."),
    CHAT_CIRCUIT_FAILURES: positiveInt(5).describe("Consecutive chat failures that open the circuit."),
    CHAT_CIRCUIT_COOLDOWN_SECONDS: positiveInt(30).describe("How long an open circuit stays open."),
    RAG_SOURCES: z.coerce.number().int().min(1).max(20).default(6).describe("Chunks given to the model as sources."),
    // Keeps out chunks only a weak vector match found.
    RAG_SCORE_FLOOR: z.coerce.number().min(0).max(1).default(0.05).describe("Minimum fused score (0–1) of a source."),
    RAG_MEDICAL_DISCLAIMER: z
      .string()
      .default(
        "This information supports, and does not replace, clinical judgement. Verify it against the cited sources and local protocols.",
      )
      .describe("Disclaimer shown with answers and placed in voice sessions' instructions."),
    PHI_MODE: z
      .enum(["off", "redact", "block"])
      .default("redact")
      .describe("What happens to PHI-like spans before text leaves for a cloud chat model."),
    LLM_PRICES: optionalString
      .transform((v, ctx) => parsePrices(v, ctx))
      .describe(
        'Model prices as JSON `{"model": {"input": USD per 1M tokens, "output": USD per 1M tokens}}`, merged over the built-in table.',
      ),
    CACHE_L1_MAX_ENTRIES: positiveInt(1_000).describe(
      "Entries kept in each isolate's memory (L1), all namespaces together; least recently used go first.",
    ),
    CACHE_TTL_EMBEDDING_SECONDS: positiveInt(86_400).describe("Lifetime of a cached query embedding in Redis (L2)."),
    CACHE_TTL_SEARCH_SECONDS: positiveInt(300).describe(
      "Lifetime of a cached search response in Redis (L2); a delete or reindex invalidates it at once.",
    ),
    VOICE_REALTIME_MODEL: z
      .string()
      .trim()
      .min(1)
      .default("gpt-realtime")
      .describe("OpenAI Realtime model of voice sessions (with `OPENAI_API_KEY`)."),
    VOICE_MAX_SESSION_SECONDS: positiveInt(7_200).describe("A voice session ends this long after it starts."),
    VOICE_IDLE_TIMEOUT_SECONDS: positiveInt(300).describe(
      "A voice session ends after this long without a client event.",
    ),
    VOICE_MAX_BUFFER_SECONDS: positiveInt(120).describe(
      "Input audio kept for one turn; more is refused (the client must commit or clear).",
    ),
    // Upstream Realtime sessions last an hour at most.
    VOICE_UPSTREAM_REFRESH_SECONDS: positiveInt(3_300).describe(
      "Move to a fresh OpenAI Realtime session after this long, between turns.",
    ),
    FLAGS_CACHE_TTL_SECONDS: z.coerce
      .number()
      .min(0)
      .max(300)
      .default(5)
      .describe("How long an isolate trusts its flag rule set before one KV version check."),
    FLAGS_EXPOSURE_SAMPLE_RATE: z.coerce
      .number()
      .min(0)
      .max(1)
      .default(0.1)
      .describe("Share of flag evaluations recorded as exposure events (0 to 1)."),
    FLAGS_EXPOSURE_FLUSH_SECONDS: positiveInt(30).describe(
      "How often an isolate adds its exposure counts per flag, variant and day to Postgres.",
    ),
    SLO_OBJECTIVES: z
      .string()
      .default("")
      .transform((v, ctx) => parseObjectives(v, ctx))
      .describe(
        "SLO objectives over the defaults of src/ops/slos.ts: `id=objective` pairs, comma-separated, objective between 0 and 1 exclusive.",
      ),
    PAGERDUTY_ROUTING_KEY: optionalString.meta({
      description:
        "PagerDuty Events API v2 routing key that receives pages; without it pages go to the webhook, and tickets go here when no webhook is set.",
      secret: true,
    }),
    PAGERDUTY_EVENTS_URL: z
      .url()
      .default("https://events.pagerduty.com/v2/enqueue")
      .describe("PagerDuty Events API v2 enqueue endpoint."),
    ALERT_ESCALATION_ROUTING_KEYS: csv.meta({
      description:
        "PagerDuty routing keys of the next escalation levels, in order, comma-separated; past the last one an escalation goes to the webhook.",
      secret: true,
    }),
    ALERT_WEBHOOK_URL: optionalUrl.meta({
      description:
        "Webhook that receives tickets (and pages when no routing key is set) as JSON, signed when `ALERT_WEBHOOK_SECRET` is set. Secret because such URLs often carry a token.",
      secret: true,
    }),
    ALERT_WEBHOOK_SECRET: optionalString.meta({
      description: "HMAC-SHA256 key that signs webhook deliveries; unset: deliveries are unsigned.",
      secret: true,
    }),
    ALERT_ESCALATE_AFTER_MINUTES: positiveInt(15).describe(
      "An unacknowledged page goes to the next escalation level after this long.",
    ),
    // Cost budgets (docs/slos.md#cost-budgets): spend is what the price table says model calls cost.
    COST_BUDGET_DAILY_USD: optionalDollars.describe(
      "Spend per UTC day that raises alerts at 50 % and 80 % (tickets) and 100 % (a page); unset: no daily budget.",
    ),
    COST_BUDGET_MONTHLY_USD: optionalDollars.describe(
      "Spend per UTC calendar month that raises alerts at 50 % and 80 % (tickets) and 100 % (a page); unset: no monthly budget.",
    ),
    COST_USER_DAILY_CAP_USD: optionalDollars.describe(
      "Spend per user and UTC day past which calls that cost money answer 429 `BUDGET_EXCEEDED` until midnight UTC; unset: no cap.",
    ),
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
    if (v.ENVIRONMENT === "production" && v.CHAOS_EVICTION === "on") {
      ctx.addIssue({ code: "custom", path: ["CHAOS_EVICTION"], message: "must not be on in production" });
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
