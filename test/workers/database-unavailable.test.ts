// Postgres unreachable (the chaos experiment database-failure, docs/chaos.md) is a 503 DATABASE_UNAVAILABLE with
// Retry-After, not a 500: over HTTP (neon()) and over the WebSocket pool alike.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { isDatabaseUnavailable } from "../../src/db/unavailable.ts";
import { type Env, requireConfig } from "../../src/env.ts";
import { answerQuestion } from "../../src/rag/answer.ts";
import { serve } from "./harness.ts";

const app = createApp();
// The local Neon proxy's address replaced by a port nothing listens on: every connection is refused.
const refused = { NEON_LOCAL_PROXY: "127.0.0.1:9" };

describe("Postgres unreachable", () => {
  it("sign-in (neon() over HTTP) is 503 DATABASE_UNAVAILABLE with Retry-After", async () => {
    const res = await serve(
      app,
      "/api/auth/login",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "nobody@example.com", password: "Granite-Harbour-Lantern-42" }),
      },
      refused,
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.headers.get("retry-after")).toBe("5");
    const body = (await res.json()) as { code: string; detail: string };
    expect(body.code).toBe("DATABASE_UNAVAILABLE");
    expect(body.detail).not.toMatch(/127\.0\.0\.1|postgres:|ECONN/);
  });

  it("registration (a transaction over the WebSocket pool) is 503 DATABASE_UNAVAILABLE", async () => {
    const res = await serve(
      app,
      "/api/auth/register",
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          email: `unreachable-${crypto.randomUUID()}@example.com`,
          password: "Granite-Harbour-Lantern-42",
          full_name: "Nobody",
        }),
      },
      refused,
    );
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string }).code).toBe("DATABASE_UNAVAILABLE");
  });

  it("a pooled client reused after its connection dropped (seen mid-transaction in database-failure) counts too", () => {
    const dropped = new Error("Failed query", {
      cause: new Error("Client has encountered a connection error and is not queryable"),
    });
    expect(isDatabaseUnavailable(dropped)).toBe(true);
    expect(isDatabaseUnavailable(new Error("Failed query", { cause: new Error("syntax error") }))).toBe(false);
    // pg's query_timeout on a connection that went silent mid-query (queue-redelivery's black-hole).
    expect(isDatabaseUnavailable(new Error("Failed query", { cause: new Error("Query read timeout") }))).toBe(true);
  });
});

describe("Postgres lost in the middle of a request", () => {
  it("an answer whose retrieval cannot reach Postgres ends with DATABASE_UNAVAILABLE, not INTERNAL", async () => {
    // Signed in before the fault (database-failure saw this: the answer's search was the first query to fail).
    const faulty = { ...env, ...refused } as Env;
    const events = [];
    for await (const event of answerQuestion(requireConfig(faulty), faulty, {
      question: "What is the potassium threshold?",
      channel: "query",
      userId: crypto.randomUUID(),
    })) {
      events.push(event);
    }
    expect(events.at(-1)).toMatchObject({ type: "error", code: "DATABASE_UNAVAILABLE" });
  });
});
