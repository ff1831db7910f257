import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import migration0011 from "../../migrations/0011_llm_usage_feature.sql?raw";
import { enforceDailyCap, nextUtcMidnight, spendsMoney } from "../../src/costs/daily-cap.ts";
import { meterFor } from "../../src/costs/model-calls.ts";
import type { Env } from "../../src/env.ts";
import { ApiError } from "../../src/errors.ts";
import { createEmbedder } from "../../src/kb/embed/index.ts";
import { llmReranker } from "../../src/rag/llm-rerank.ts";
import type { SearchResult } from "../../src/rag/search.ts";
import { createVoiceSession } from "../../src/voice/sessions.ts";
import { recordUpstreamTurn } from "../../src/voice/usage-sync.ts";
import { withOpenAi } from "./answer-helpers.ts";
import { type CallOptions, call, callRaw, openSocket, stack } from "./harness.ts";
import { config, db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";

// Model-call usage and cost (docs/costs.md): the feature of every usage row and llm_* metric, the per-user
// daily cap (COST_USER_DAILY_CAP_USD) and GET /api/admin/costs.

const run = crypto.randomUUID().slice(0, 8);
const SOURCE = `costs-${run}`;
const WORD = `pelvarin${run.replace(/\d/g, "")}`;
const filters = { source_type: SOURCE };

let admin: TestUser;

beforeAll(async () => {
  admin = await signedInUser("admin");
  await addIndexedDocument(admin.access, {
    title: "Anaphylaxis",
    sourceType: SOURCE,
    text: `Anaphylaxis ${WORD} needs intramuscular adrenaline 0.5 mg into the outer thigh, repeated after 5 minutes if needed.`,
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Metric events written to Analytics Engine from now on, as "name:label:label" series with their values. */
function analytics() {
  const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
  const events = () =>
    writes.mock.calls.map(([point]) => {
      const [name, , ...labels] = point?.blobs ?? [];
      return { name: String(name), series: [name, ...labels].join(":"), value: point?.doubles?.[0] as number };
    });
  return {
    valuesOf: (series: string) =>
      events()
        .filter((e) => e.series === series)
        .map((e) => e.value),
    named: (name: string) => events().filter((e) => e.name === name),
  };
}

interface UsageRow {
  feature: string;
  channel: string;
  provider: string;
  model: string;
  outcome: string;
  conversation_id: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number | null;
}

async function usageRows(userId: string | null, where = sql`true`): Promise<UsageRow[]> {
  const owner = userId === null ? sql`user_id is null` : sql`user_id = ${userId}`;
  const result = (await db.execute(
    sql`select feature, channel, provider, model, outcome, conversation_id, prompt_tokens, completion_tokens, cost_usd
          from llm_usage where ${owner} and ${where} order by created_at`,
  )) as unknown as { rows: UsageRow[] };
  return result.rows.map((row) => ({ ...row, cost_usd: row.cost_usd === null ? null : Number(row.cost_usd) }));
}

const spend = (userId: string, costUsd: number, at = new Date()) =>
  db.execute(
    sql`insert into llm_usage (feature, user_id, channel, provider, model, outcome, prompt_tokens, completion_tokens, cost_usd, latency_ms, created_at)
        values ('answers', ${userId}, 'query', 'openai', 'gpt-4o-mini', 'answered', 1, 1, ${costUsd}, 1, ${at.toISOString()})`,
  );

const ask = (user: TestUser, query: string, options: CallOptions = {}) =>
  callRaw("POST", "/api/rag/query", { ...options, token: user.access, json: { query, filters } });

describe("llm_usage.feature (migration 0011)", () => {
  it("is NOT NULL and constrained to the four features in the schema", async () => {
    const result = (await db.execute(
      sql`select is_nullable from information_schema.columns where table_name = 'llm_usage' and column_name = 'feature'`,
    )) as unknown as { rows: { is_nullable: string }[] };
    expect(result.rows).toEqual([{ is_nullable: "NO" }]);
  });

  it("backfills voice rows as voice and every other row as answers, then forbids null", async () => {
    // The migration as shipped, run on a pre-0011 copy of the table in a schema of its own.
    const schema = `backfill_${run}`;
    await db.execute(sql.raw(`create schema "${schema}"`));
    try {
      await db.execute(
        sql.raw(`create table "${schema}"."llm_usage" (id serial primary key, channel text not null,
                 created_at timestamp with time zone not null default now())`),
      );
      await db.execute(
        sql.raw(
          `insert into "${schema}"."llm_usage" (channel) values ('voice'), ('query'), ('conversation'), ('websocket'), ('voice')`,
        ),
      );
      for (const statement of migration0011.split("--> statement-breakpoint").filter((s) => s.trim())) {
        await db.execute(sql.raw(statement.replaceAll('"llm_usage"', `"${schema}"."llm_usage"`)));
      }
      const rows = (await db.execute(
        sql.raw(`select channel, feature from "${schema}"."llm_usage" order by id`),
      )) as unknown as { rows: { channel: string; feature: string }[] };
      expect(rows.rows.map((r) => `${r.channel}:${r.feature}`)).toEqual([
        "voice:voice",
        "query:answers",
        "conversation:answers",
        "websocket:answers",
        "voice:voice",
      ]);
      await expect(
        db.execute(sql.raw(`insert into "${schema}"."llm_usage" (channel, feature) values ('query', null)`)),
      ).rejects.toThrow();
    } finally {
      await db.execute(sql.raw(`drop schema "${schema}" cascade`));
    }
  });
});

describe("model calls: a usage row per paid call, llm_* metrics per call, by feature", () => {
  it("a paid answer writes one answers row and its llm_calls_total / llm_tokens_total / llm_cost_usd_total", async () => {
    const user = await signedInUser();
    const metrics = analytics();
    const res = await ask(user, `adrenaline for anaphylaxis ${WORD}?`, { overrides: withOpenAi() });
    expect(res.status).toBe(200);
    const answer = await res.json<{ cost_usd: number; usage: { prompt_tokens: number; completion_tokens: number } }>();
    // One model call: the vector arm is skipped (the index holds local vectors), so no query embedding.
    expect(metrics.named("llm_calls_total").map((e) => e.series)).toEqual([
      "llm_calls_total:answers:openai:gpt-4o-mini:ok",
    ]);
    expect(metrics.valuesOf("llm_tokens_total:answers:gpt-4o-mini:prompt")).toEqual([answer.usage.prompt_tokens]);
    expect(metrics.valuesOf("llm_tokens_total:answers:gpt-4o-mini:completion")).toEqual([
      answer.usage.completion_tokens,
    ]);
    expect(metrics.valuesOf("llm_cost_usd_total:answers:gpt-4o-mini")).toEqual([answer.cost_usd]);
    expect(await usageRows(user.id)).toEqual([
      {
        feature: "answers",
        channel: "query",
        provider: "openai",
        model: "gpt-4o-mini",
        outcome: "answered",
        conversation_id: null,
        prompt_tokens: answer.usage.prompt_tokens,
        completion_tokens: answer.usage.completion_tokens,
        cost_usd: answer.cost_usd,
      },
    ]);
  });

  it("local providers are counted in the metrics (embeddings and answers) and write no row", async () => {
    const user = await signedInUser();
    const metrics = analytics();
    const res = await ask(user, `thigh adrenaline ${WORD} ${run}?`);
    expect(await res.json()).toMatchObject({ provider: "local", outcome: "answered" });
    expect(
      metrics
        .named("llm_calls_total")
        .map((e) => e.series)
        .sort(),
    ).toEqual([
      "llm_calls_total:answers:local:local-extractive-v1:ok",
      "llm_calls_total:embeddings:local:local-hash-v1:ok",
    ]);
    expect(metrics.valuesOf("llm_tokens_total:embeddings:local-hash-v1:prompt")[0]).toBeGreaterThan(0);
    // Free: no cost series.
    expect(metrics.named("llm_cost_usd_total")).toEqual([]);
    expect(await usageRows(user.id)).toEqual([]);
  });

  it("a paid query embedding is a row for the searcher; ingestion's embedder pays for nobody in particular", async () => {
    const user = await signedInUser();
    const paid = { ...config, ...withOpenAi() } as typeof config;
    const text = `embedding cost ${run} ${crypto.randomUUID()}`;
    const tokens = Math.ceil(text.length / 4); // what the OpenAI stand-in counts
    const metrics = analytics();
    const ctx = createExecutionContext();
    const meter = meterFor(paid, env as unknown as Env, ctx, {
      feature: "embeddings",
      userId: user.id,
      channel: "search",
    });
    await createEmbedder(paid, meter).embed([text]);
    await waitOnExecutionContext(ctx);
    expect(metrics.valuesOf("llm_calls_total:embeddings:openai:text-embedding-3-small:ok")).toEqual([1]);
    expect(metrics.valuesOf("llm_tokens_total:embeddings:text-embedding-3-small:prompt")).toEqual([tokens]);
    expect(metrics.valuesOf("llm_cost_usd_total:embeddings:text-embedding-3-small")).toEqual([
      Math.round(tokens * 0.02 * 100) / 1e8,
    ]);
    expect(await usageRows(user.id)).toMatchObject([
      { feature: "embeddings", channel: "search", provider: "openai", model: "text-embedding-3-small" },
    ]);
    expect((await usageRows(user.id))[0]?.prompt_tokens).toBe(tokens);

    // The default meter: a document embedded for the index, written in the background.
    const marker = `ingest-${crypto.randomUUID()}`;
    await createEmbedder(paid).embed([marker, `${marker} second`]);
    const ingested = await eventually(() =>
      usageRows(
        null,
        sql`channel = 'ingest' and prompt_tokens = ${Math.ceil(marker.length / 4) + Math.ceil((marker.length + 7) / 4)}`,
      ),
    );
    expect(ingested).toMatchObject([{ feature: "embeddings", channel: "ingest", model: "text-embedding-3-small" }]);
  });

  it("the LLM reranker's call is a reranker row and metrics", async () => {
    const user = await signedInUser();
    const judge = `judge-costs-${run}`;
    const paid = {
      ...config,
      ...withOpenAi(),
      RETRIEVAL_RERANKER: "llm",
      RETRIEVAL_RERANK_MODEL: judge,
      LLM_PRICES: { [judge]: { input: 1, output: 2 } },
    } as typeof config;
    const result = (title: string): SearchResult => ({
      documentId: crypto.randomUUID(),
      externalId: null,
      title,
      chunkId: crypto.randomUUID(),
      chunkIndex: 0,
      page: null,
      headingPath: [],
      text: `${title} text`,
      snippet: title,
      score: 0.5,
      retrievers: {},
    });
    const metrics = analytics();
    const ctx = createExecutionContext();
    const meter = meterFor(paid, env as unknown as Env, ctx, {
      feature: "reranker",
      userId: user.id,
      channel: "search",
    });
    await llmReranker(paid, meter).rerank(`adrenaline ${run}`, [result("adrenaline dose"), result("other")]);
    await waitOnExecutionContext(ctx);
    expect(metrics.valuesOf(`llm_calls_total:reranker:openai:${judge}:ok`)).toEqual([1]);
    const [row, ...more] = await usageRows(user.id);
    expect(more).toEqual([]);
    expect(row).toMatchObject({ feature: "reranker", channel: "search", provider: "openai", model: judge });
    expect(row?.prompt_tokens).toBeGreaterThan(0);
    expect(row?.cost_usd).toBe(((row?.prompt_tokens ?? 0) * 1 + (row?.completion_tokens ?? 0) * 2) / 1e6);
    expect(metrics.valuesOf(`llm_cost_usd_total:reranker:${judge}`)).toEqual([row?.cost_usd]);
  });

  it("a voice upstream turn writes one voice row and its metrics", async () => {
    const user = await signedInUser();
    const session = await createVoiceSession(db, {
      userId: user.id,
      conversationId: null,
      mode: "upstream",
      model: "gpt-realtime",
    });
    const metrics = analytics();
    const exchange = { question: "", answer: "", citations: [], inputTokens: 1000, outputTokens: 500, latencyMs: 80 };
    const state = { sessionId: session.id, userId: user.id, conversationId: null };
    await recordUpstreamTurn(config, db, state, "gpt-realtime", exchange, 0);
    // 1000 × $32 + 500 × $64 per 1M tokens.
    const cost = 0.064;
    expect(metrics.valuesOf("llm_calls_total:voice:openai:gpt-realtime:ok")).toEqual([1]);
    expect(metrics.valuesOf("llm_tokens_total:voice:gpt-realtime:prompt")).toEqual([1000]);
    expect(metrics.valuesOf("llm_tokens_total:voice:gpt-realtime:completion")).toEqual([500]);
    expect(metrics.valuesOf("llm_cost_usd_total:voice:gpt-realtime")).toEqual([cost]);
    // The row is written in the background (the client already has its answer).
    expect(await eventually(() => usageRows(user.id))).toEqual([
      {
        feature: "voice",
        channel: "voice",
        provider: "openai",
        model: "gpt-realtime",
        outcome: "answered",
        conversation_id: null,
        prompt_tokens: 1000,
        completion_tokens: 500,
        cost_usd: cost,
      },
    ]);
  });
});

/** The rows once there are some (written in the background), or none after 5 s. */
async function eventually<T>(read: () => Promise<T[]>): Promise<T[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const rows = await read();
    if (rows.length > 0 || Date.now() > deadline) {
      // One more read: a row written twice shows here.
      await new Promise((r) => setTimeout(r, 100));
      return read();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("COST_USER_DAILY_CAP_USD", () => {
  const capped = (extra: Record<string, string> = {}) => withOpenAi({ COST_USER_DAILY_CAP_USD: "0.5", ...extra });

  it("reads no spend when no cap is set, or when the call is free", async () => {
    const spentSince = vi.fn(async () => 100);
    await enforceDailyCap({ ...config, ...withOpenAi() } as typeof config, env as unknown as Env, "u", "answer", {
      spentSince,
    });
    await enforceDailyCap({ ...config, COST_USER_DAILY_CAP_USD: 0.5 }, env as unknown as Env, "u", "answer", {
      spentSince,
    });
    const paid = { ...config, ...withOpenAi(), COST_USER_DAILY_CAP_USD: 0.5 } as typeof config;
    await enforceDailyCap(paid, env as unknown as Env, "u", { search: "keyword" }, { spentSince });
    expect(spentSince).not.toHaveBeenCalled();
    // The control: the same paid call with the cap set reads the spend once (and refuses).
    await expect(enforceDailyCap(paid, env as unknown as Env, "u", "answer", { spentSince })).rejects.toThrow(ApiError);
    expect(spentSince).toHaveBeenCalledTimes(1);
  });

  it("knows which calls spend money", () => {
    const paid = { ...config, OPENAI_API_KEY: "sk-x" };
    expect(spendsMoney(config, "answer")).toBe(false);
    expect(spendsMoney(config, "voice")).toBe(false);
    expect(spendsMoney(paid, "answer")).toBe(true);
    expect(spendsMoney(paid, "voice")).toBe(true);
    expect(spendsMoney(paid, { search: "hybrid" })).toBe(true);
    expect(spendsMoney(paid, { search: "keyword" })).toBe(false);
    expect(spendsMoney({ ...paid, RETRIEVAL_RERANKER: "llm" }, { search: "keyword" })).toBe(true);
    // A self-hosted model priced 0/0 is free.
    const free = { input: 0, output: 0 };
    expect(
      spendsMoney({ ...paid, LLM_PRICES: { "gpt-4o-mini": free, "text-embedding-3-small": free } }, "answer"),
    ).toBe(false);
  });

  it("counts from midnight UTC and resets then: Retry-After and resetsAt", async () => {
    const now = new Date("2026-03-10T23:59:30.000Z");
    const paid = { ...config, ...withOpenAi(), COST_USER_DAILY_CAP_USD: 0.5 } as typeof config;
    const spentSince = vi.fn(async () => 0.5);
    const refusal = await enforceDailyCap(paid, env as unknown as Env, "u", "answer", { spentSince, now }).catch(
      (e: ApiError) => e,
    );
    expect(spentSince).toHaveBeenCalledWith("u", new Date("2026-03-10T00:00:00.000Z"));
    expect(refusal).toBeInstanceOf(ApiError);
    expect(refusal).toMatchObject({
      code: "BUDGET_EXCEEDED",
      status: 429,
      headers: { "Retry-After": "30" },
      extensions: { retryAfterSeconds: 30, resetsAt: "2026-03-11T00:00:00.000Z" },
    });
    expect(nextUtcMidnight(new Date("2026-12-31T00:00:00.000Z")).toISOString()).toBe("2027-01-01T00:00:00.000Z");
    const under = vi.fn(async () => 0.4999);
    await expect(enforceDailyCap(paid, env as unknown as Env, "u", "answer", { spentSince: under, now })).resolves.toBe(
      undefined,
    );
  });

  it("lets a user under the cap through, refuses one at it with 429 BUDGET_EXCEEDED, and leaves others alone", async () => {
    const [spender, other] = await Promise.all([signedInUser(), signedInUser()]);
    // Yesterday's spend does not count.
    const lastNight = new Date(nextUtcMidnight(new Date()).getTime() - 86_400_000 - 60_000);
    await spend(spender.id, 5, lastNight);
    expect((await ask(spender, `adrenaline ${WORD}`, { overrides: capped() })).status).toBe(200);

    await spend(spender.id, 0.5);
    const metrics = analytics();
    const refused = await ask(spender, `adrenaline ${WORD}`, { overrides: capped() });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toContain("application/problem+json");
    const body = await refused.json<{ code: string; detail: string; resetsAt: string; retryAfterSeconds: number }>();
    expect(body.code).toBe("BUDGET_EXCEEDED");
    expect(body.detail).toMatch(/daily spending cap .* is reached\. It resets at midnight UTC/);
    expect(body.resetsAt).toMatch(/T00:00:00\.000Z$/);
    expect(refused.headers.get("retry-after")).toBe(String(body.retryAfterSeconds));
    const untilReset = Date.parse(body.resetsAt) - Date.now();
    expect(untilReset).toBeGreaterThan(0);
    expect(untilReset).toBeLessThanOrEqual(86_400_000);
    expect(metrics.valuesOf("rate_limited_total:cost_cap")).toEqual([1]);
    // Nothing was asked of the model.
    expect(metrics.named("llm_calls_total")).toEqual([]);

    // A stream is refused before it starts: the 429 itself, not an SSE error event.
    const streamed = await callRaw("POST", "/api/rag/query", {
      token: spender.access,
      json: { query: `adrenaline ${WORD}`, filters, stream: true },
      overrides: capped(),
    });
    expect(streamed.status).toBe(429);
    expect(streamed.headers.get("content-type")).toContain("application/problem+json");

    // Conversations: nothing stored, 429.
    const conversation = await call("POST", "/api/conversations", { token: spender.access, json: {} });
    const send = await call("POST", `/api/conversations/${conversation.body.id}/messages`, {
      token: spender.access,
      json: { content: `adrenaline ${WORD}`, client_message_id: "c-1" },
      overrides: capped(),
    });
    expect(send.status).toBe(429);
    const thread = await call("GET", `/api/conversations/${conversation.body.id}/messages`, { token: spender.access });
    expect(thread.body.total).toBe(0);

    // Search: by meaning it would pay for the query embedding; by keywords alone it is free.
    const search = (mode: string) =>
      call("POST", "/api/kb/search", { token: spender.access, json: { query: WORD, mode }, overrides: capped() });
    expect((await search("hybrid")).status).toBe(429);
    expect((await search("keyword")).status).toBe(200);

    // Without a key everything is local and free: the same user is answered.
    const local = await ask(spender, `adrenaline ${WORD}`, { overrides: { COST_USER_DAILY_CAP_USD: "0.5" } });
    expect(local.status).toBe(200);

    const answered = await ask(other, `adrenaline ${WORD}`, { overrides: capped() });
    expect(answered.status).toBe(200);
    expect(metrics.valuesOf("rate_limited_total:cost_cap")).toEqual([1, 1, 1, 1]);
  });

  it("refuses a voice session in upstream mode before the upgrade, and its ticket", async () => {
    const user = await signedInUser();
    await spend(user.id, 0.75);
    const upstream = { ...capped(), OPENAI_BASE_URL: `${stack().realtimeUrl}/v1` };
    const socket = await openSocket("/api/voice/realtime", { token: user.access, overrides: upstream });
    expect(socket.res.status).toBe(429);
    expect(socket.socket).toBeNull();
    expect(await socket.res.json()).toMatchObject({ code: "BUDGET_EXCEEDED" });
    const ticket = await call("POST", "/api/voice/sessions", { token: user.access, json: {}, overrides: upstream });
    expect(ticket.status).toBe(429);
    expect(ticket.headers.get("retry-after")).toBe(String(ticket.body.retryAfterSeconds));
    // No session row was made for either.
    const sessions = (await db.execute(
      sql`select count(*)::int as n from voice_sessions where user_id = ${user.id}`,
    )) as unknown as { rows: { n: number }[] };
    expect(sessions.rows[0]?.n).toBe(0);
  });
});

describe("GET /api/admin/costs", () => {
  // Three days of its own, far in the past (other files' rows are all recent), picked by the run id.
  const day0 = Date.UTC(1995, 0, 1) / 86_400_000 + (Number.parseInt(run.slice(0, 4), 16) % 3_000) * 3;
  const dayStart = (n: number) => new Date((day0 + n) * 86_400_000);
  const isoDay = (n: number) => dayStart(n).toISOString().slice(0, 10);
  const window = `from=${isoDay(0)}&to=${isoDay(3)}`;
  let alice: TestUser;
  let bob: TestUser;
  let viewer: TestUser;
  let conversationId: string;

  beforeAll(async () => {
    [alice, bob, viewer] = await Promise.all([signedInUser(), signedInUser(), signedInUser("viewer")]);
    conversationId = (await call("POST", "/api/conversations", { token: alice.access, json: {} })).body.id;
    const at = (n: number, hours: number) => new Date(dayStart(n).getTime() + hours * 3_600_000).toISOString();
    const rows = [
      ["answers", alice.id, conversationId, "gpt-4o-mini", 100, 50, 0.25, at(0, 10)],
      ["embeddings", alice.id, null, "text-embedding-3-small", 40, 0, 0.125, at(1, 10)],
      ["voice", bob.id, null, "gpt-realtime", 10, 20, 1, at(1, 23.99)],
      ["embeddings", null, null, 'custom,"v2"', 60, 0, 0.5, at(2, 0)],
      // `to` is exclusive: this one is out.
      ["answers", alice.id, null, "gpt-4o-mini", 1, 1, 100, at(3, 0)],
    ] as const;
    for (const [feature, userId, conversation, model, prompt, completion, cost, createdAt] of rows) {
      await db.execute(
        sql`insert into llm_usage (feature, user_id, conversation_id, channel, provider, model, outcome, prompt_tokens, completion_tokens, cost_usd, latency_ms, created_at)
            values (${feature}, ${userId}, ${conversation}, 'query', 'openai', ${model}, 'ok', ${prompt}, ${completion}, ${cost}, 1, ${createdAt})`,
      );
    }
  });

  const costs = (query: string, options: CallOptions = {}) =>
    call("GET", `/api/admin/costs?${query}`, { token: admin.access, ...options });
  const totals = { calls: 4, prompt_tokens: 210, completion_tokens: 70, cost_usd: 1.875 };

  it("groups by user (id and email), costliest first, with totals", async () => {
    const res = await costs(`group_by=user&${window}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      group_by: "user",
      from: dayStart(0).toISOString(),
      to: dayStart(3).toISOString(),
      groups: [
        { user_id: bob.id, email: bob.email, calls: 1, prompt_tokens: 10, completion_tokens: 20, cost_usd: 1 },
        { user_id: null, email: null, calls: 1, prompt_tokens: 60, completion_tokens: 0, cost_usd: 0.5 },
        { user_id: alice.id, email: alice.email, calls: 2, prompt_tokens: 140, completion_tokens: 50, cost_usd: 0.375 },
      ],
      totals,
    });
  });

  it("groups by model, feature, day and conversation", async () => {
    const groups = async (by: string) => {
      const res = await costs(`group_by=${by}&${window}`);
      expect(res.status).toBe(200);
      expect(res.body.totals).toEqual(totals);
      return res.body.groups.map((g: Record<string, unknown>) => [Object.values(g)[0], g.calls, g.cost_usd]);
    };
    expect(await groups("model")).toEqual([
      ["gpt-realtime", 1, 1],
      ['custom,"v2"', 1, 0.5],
      ["gpt-4o-mini", 1, 0.25],
      ["text-embedding-3-small", 1, 0.125],
    ]);
    expect(await groups("feature")).toEqual([
      ["voice", 1, 1],
      ["embeddings", 2, 0.625],
      ["answers", 1, 0.25],
    ]);
    expect(await groups("day")).toEqual([
      [isoDay(0), 1, 0.25],
      [isoDay(1), 2, 1.125],
      [isoDay(2), 1, 0.5],
    ]);
    expect(await groups("conversation")).toEqual([
      [null, 3, 1.625],
      [conversationId, 1, 0.25],
    ]);
  });

  it("answers CSV for format=csv or Accept: text/csv: a header row, RFC 4180 quoting", async () => {
    const byModel = await callRaw("GET", `/api/admin/costs?group_by=model&format=csv&${window}`, {
      token: admin.access,
    });
    expect(byModel.headers.get("content-type")).toContain("text/csv");
    expect(await byModel.text()).toBe(
      [
        "model,calls,prompt_tokens,completion_tokens,cost_usd",
        "gpt-realtime,1,10,20,1",
        '"custom,""v2""",1,60,0,0.5',
        "gpt-4o-mini,1,100,50,0.25",
        "text-embedding-3-small,1,40,0,0.125",
        "",
      ].join("\r\n"),
    );
    const byUser = await callRaw("GET", `/api/admin/costs?group_by=user&${window}`, {
      token: admin.access,
      headers: { accept: "text/csv" },
    });
    expect((await byUser.text()).split("\r\n")).toEqual([
      "user_id,email,calls,prompt_tokens,completion_tokens,cost_usd",
      `${bob.id},${bob.email},1,10,20,1`,
      ",,1,60,0,0.5",
      `${alice.id},${alice.email},2,140,50,0.375`,
      "",
    ]);
  });

  it("refuses bad input with 422 naming the field", async () => {
    const refused = async (query: string, field: string) => {
      const res = await costs(query);
      expect(res.status, query).toBe(422);
      expect(res.body.code).toBe("VALIDATION_FAILED");
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual([field]);
      return res.body.detail as string;
    };
    expect(await refused("group_by=team", "query.group_by")).toMatch(/user/);
    expect(await refused("from=yesterday", "query.from")).toMatch(/ISO 8601/);
    expect(await refused(`to=${isoDay(0)}T25:00:00Z`, "query.to")).toMatch(/ISO 8601/);
    expect(await refused(`from=${isoDay(1)}&to=${isoDay(1)}`, "query.from")).toMatch(/before to/);
    expect(await refused(`from=${isoDay(2)}&to=${isoDay(1)}`, "query.from")).toMatch(/before to/);
    expect(await refused("from=2020-01-01&to=2021-01-02", "query.to")).toMatch(/366 days/);
    expect((await costs("from=2020-01-01&to=2021-01-01")).status).toBe(200);
  });

  it("defaults to the last 30 days and JSON", async () => {
    const before = Date.now();
    const res = await costs("");
    expect(res.status).toBe(200);
    expect(res.body.group_by).toBe("user");
    const span = Date.parse(res.body.to) - Date.parse(res.body.from);
    expect(span).toBe(30 * 86_400_000);
    expect(Date.parse(res.body.to)).toBeGreaterThanOrEqual(before);
  });

  it("lets viewers read; a plain user gets 403, no token 401", async () => {
    expect((await costs(`group_by=feature&${window}`, { token: viewer.access })).status).toBe(200);
    expect((await costs(`group_by=feature&${window}`, { token: alice.access })).status).toBe(403);
    expect((await call("GET", "/api/admin/costs")).status).toBe(401);
  });

  it("is in the OpenAPI document", async () => {
    const doc = await call("GET", "/openapi.json");
    expect(Object.keys(doc.body.paths["/api/admin/costs"])).toEqual(["get"]);
  });
});
