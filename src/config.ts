import { z } from "zod";

// One schema for every variable the Worker reads. Only zod is imported here, so the dev
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

export const variablesSchema = z
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
