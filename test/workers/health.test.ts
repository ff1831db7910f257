import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { scrapeSample, settledSample } from "./exposition.ts";
import { OPERATOR_TOKEN, serve, stack } from "./harness.ts";

const app = createApp();
const operator = { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } };
// A port nothing listens on: the database is "down".
const deadDatabase = { DATABASE_URL: "postgres://postgres@127.0.0.1:9/none" };

describe("GET|HEAD /health", () => {
  it("reports liveness with version, commit and time", async () => {
    const res = await serve(app, "/health");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    expect(body).toMatchObject({ status: "ok", version: "0.1.0", commit: "unknown" });
    expect(Date.parse(body.timestamp as string)).not.toBeNaN();
  });

  it("answers HEAD without a body", async () => {
    const res = await serve(app, "/health", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });
});

describe("GET /ready", () => {
  it("is 200 when the database answers and migrations are current", async () => {
    const res = await serve(app, "/ready");
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string }> };
    expect(res.status).toBe(200);
    expect(body.status).toBe("ready");
    expect(body.checks.database?.status).toBe("ok");
    expect(body.checks.migrations?.status).toBe("ok");
  });

  it("is 503 problem+json with per-check detail when the database is down", async () => {
    const res = await serve(app, "/ready", {}, deadDatabase);
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const body = (await res.json()) as { code: string; checks: Record<string, { status: string; reason?: string }> };
    expect(body.code).toBe("NOT_READY");
    expect(body.checks.database?.status).toBe("down");
    expect(body.checks.database?.reason).toBeTruthy();
    expect(JSON.stringify(body)).not.toContain("postgres://");
  });
});

describe("GET /health/detailed", () => {
  it("refuses without the operator token", async () => {
    const res = await serve(app, "/health/detailed");
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("reports every component with status and latency", async () => {
    const res = await serve(app, "/health/detailed", operator);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      status: string;
      components: Record<string, { status: string; latency_ms: number | null; reason?: string }>;
    };
    expect(Object.keys(body.components).sort()).toEqual(["ai_provider", "postgres", "queue", "redis", "vector_store"]);
    expect(body.components.postgres).toMatchObject({ status: "ok" });
    expect(body.components.postgres?.latency_ms).toBeGreaterThanOrEqual(0);
    // Not configured is "disabled", never "down".
    expect(body.components.ai_provider).toMatchObject({ status: "disabled", latency_ms: null });
    expect(body.components.redis?.status).toBe(stack().redis ? "ok" : "disabled");
    expect(body.components.vector_store?.status).toBe(stack().databaseHasVector ? "ok" : "down");
    expect(body.status).toBe(stack().databaseHasVector ? "healthy" : "degraded");
  });

  it("is unhealthy when Postgres is down, degraded when an optional component is", async () => {
    const down = await serve(app, "/health/detailed", operator, deadDatabase);
    expect(((await down.json()) as { status: string }).status).toBe("unhealthy");
    const badRedis = { UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9", UPSTASH_REDIS_REST_TOKEN: "x" };
    const degraded = await serve(app, "/health/detailed", operator, badRedis);
    const body = (await degraded.json()) as { status: string; components: Record<string, { status: string }> };
    expect(body.components.redis?.status).toBe("down");
    expect(body.status).toBe("degraded");
  });
});

describe("health check metrics", () => {
  const status = (component: string) => `voiceassist_health_check_status{component="${component}"}`;
  const probes = (component: string) => `voiceassist_health_check_duration_seconds_count{component="${component}"}`;

  it("records each component's status and probe duration when /health/detailed runs", async () => {
    const before = (await scrapeSample(probes("postgres"))) ?? 0;
    const down = await serve(app, "/health/detailed", operator, deadDatabase);
    expect(((await down.json()) as { status: string }).status).toBe("unhealthy");
    expect(await settledSample(probes("postgres"), before + 1)).toBe(before + 1);
    expect(await scrapeSample(status("postgres"))).toBe(0);

    const up = await serve(app, "/health/detailed", operator);
    expect(up.status).toBe(200);
    expect(await settledSample(probes("postgres"), before + 2)).toBe(before + 2);
    expect(await scrapeSample(status("postgres"))).toBe(1);
    // Not configured: -1. The queue binding is checked, not probed: a status, no duration.
    expect(await scrapeSample(status("ai_provider"))).toBe(-1);
    expect(await scrapeSample(status("queue"))).toBe(1);
    expect(await scrapeSample(probes("queue"))).toBeUndefined();
    expect(await scrapeSample(`voiceassist_health_check_duration_seconds_bucket{component="postgres",le="+Inf"}`)).toBe(
      before + 2,
    );
  });
});
