import { describe, expect, it } from "vitest";
import { configVariableNames, parseConfig } from "../../src/config.ts";

const base = {
  DATABASE_URL: "postgres://u:p@db.example.com/app",
  JWT_SIGNING_KEYS: "k1:0123456789abcdef0123456789abcdef",
};

describe("parseConfig", () => {
  it("applies defaults", () => {
    const result = parseConfig(base);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config).toMatchObject({
      ENVIRONMENT: "production",
      LOG_LEVEL: "info",
      MAX_BODY_BYTES: 1_048_576,
      CORS_ORIGINS: [],
    });
  });

  it("names a missing variable", () => {
    expect(parseConfig({ JWT_SIGNING_KEYS: base.JWT_SIGNING_KEYS })).toEqual({
      ok: false,
      issues: [{ variable: "DATABASE_URL", message: "is required" }],
    });
  });

  it.each([
    [{ DATABASE_URL: "mysql://x/y" }, "DATABASE_URL"],
    [{ ...base, LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ ...base, MAX_BODY_BYTES: "-5" }, "MAX_BODY_BYTES"],
    [{ ...base, SENTRY_DSN: "not a url" }, "SENTRY_DSN"],
    [{ ...base, OPERATOR_TOKEN: "short" }, "OPERATOR_TOKEN"],
    [{ ...base, UPSTASH_REDIS_REST_URL: "https://x.upstash.io" }, "UPSTASH_REDIS_REST_TOKEN"],
    [{ ...base, NEON_LOCAL_PROXY: "127.0.0.1:4444" }, "NEON_LOCAL_PROXY"],
    [{ ...base, JWT_SIGNING_KEYS: "k1:short" }, "JWT_SIGNING_KEYS"],
    [
      { ...base, JWT_SIGNING_KEYS: "k1:0123456789abcdef0123456789abcdef,k1:0123456789abcdef0123456789abcdeX" },
      "JWT_SIGNING_KEYS",
    ],
    [{ ...base, RATE_LIMIT_LOGIN: "ten per minute" }, "RATE_LIMIT_LOGIN"],
  ])("rejects %j naming %s", (vars, variable) => {
    const result = parseConfig(vars);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((i) => i.variable)).toContain(variable);
  });

  it("treats empty strings as unset and splits CORS_ORIGINS", () => {
    const result = parseConfig({ ...base, SENTRY_DSN: "", CORS_ORIGINS: "https://a.example, https://b.example" });
    expect(result.ok && result.config.SENTRY_DSN).toBeUndefined();
    expect(result.ok && result.config.CORS_ORIGINS).toEqual(["https://a.example", "https://b.example"]);
  });

  it("parses signing keys (first signs) and rate limits", () => {
    const result = parseConfig({
      ...base,
      JWT_SIGNING_KEYS: "new:0123456789abcdef0123456789abcdef, old:fedcba9876543210fedcba9876543210",
      RATE_LIMIT_LOGIN: "3/30",
    });
    expect(result.ok && result.config.JWT_SIGNING_KEYS.map((k) => k.kid)).toEqual(["new", "old"]);
    expect(result.ok && result.config.RATE_LIMIT_LOGIN).toEqual({ limit: 3, windowSeconds: 30 });
  });

  it("lists every variable name for the dev script and the docs", () => {
    expect(configVariableNames).toContain("DATABASE_URL");
    expect(configVariableNames).toContain("OPENAI_API_KEY");
  });
});
