import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { NOT_IN_KNOWLEDGE_BASE } from "../../src/llm/local-composer.ts";
import { parseSse, upstreamRequests, withOpenAi } from "./answer-helpers.ts";
import { type CallOptions, callRaw } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";

// Documents of this file only: every question is scoped to its source type.
const run = crypto.randomUUID().slice(0, 8);
const SOURCE = `answers-${run}`;
const WORD = `quorvath${run.replace(/\d/g, "")}`;
const filters = { source_type: SOURCE };

let admin: TestUser;
let user: TestUser;
const chunkTexts = new Map<string, string>();

const ask = (json: Record<string, unknown>, options: CallOptions = {}) =>
  callRaw("POST", "/api/rag/query", { ...options, token: user.access, json: { filters, ...json } });

beforeAll(async () => {
  admin = await signedInUser("admin");
  user = await signedInUser();
  await addIndexedDocument(admin.access, {
    title: "Hypoglycaemia protocol",
    sourceType: SOURCE,
    text: `Hypoglycaemia ${WORD} is a blood glucose below 4 mmol/L. Give 15 g of fast-acting glucose and recheck after 15 minutes.\n\nIf the patient cannot swallow, give glucagon 1 mg intramuscularly.`,
  });
  await addIndexedDocument(admin.access, {
    title: "Sepsis bundle",
    sourceType: SOURCE,
    text: `Sepsis ${WORD} care starts with blood cultures before antibiotics. Give broad-spectrum antibiotics within one hour of recognition.`,
  });
  const rows = (await db.execute(
    sql`select c.id, c.text from kb_chunks c join kb_documents d on d.id = c.document_id where d.source_type = ${SOURCE}`,
  )) as unknown as { rows: { id: string; text: string }[] };
  for (const row of rows.rows) chunkTexts.set(row.id, row.text);
});

const expectVerbatimCitations = (citations: { chunk_id: string; snippet: string }[]) => {
  expect(citations.length).toBeGreaterThan(0);
  for (const c of citations) expect(chunkTexts.get(c.chunk_id)).toContain(c.snippet);
};

describe("POST /api/rag/query with the local composer (no OpenAI key)", () => {
  it("answers in JSON with verbatim citations, usage and a zero cost", async () => {
    const res = await ask({ query: `What do I give for hypoglycaemia ${WORD}?` });
    expect(res.status).toBe(200);
    const body = await res.json<
      Record<string, unknown> & { citations: { chunk_id: string; snippet: string; index: number }[] }
    >();
    expect(body).toMatchObject({ outcome: "answered", provider: "local", model: "local-extractive-v1", cost_usd: 0 });
    expect(body.content).toMatch(/\[1\]/);
    expect(body.content).toContain("glucose");
    expectVerbatimCitations(body.citations);
    expect(body.citations[0]).toMatchObject({ index: 1, title: "Hypoglycaemia protocol" });
    expect(body.disclaimer).toBeTruthy();
  });

  it("streams delta, citations and done over SSE; the deltas add up to the answer", async () => {
    const res = await ask({ query: `sepsis ${WORD} antibiotics within one hour`, stream: true });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = parseSse(await res.text());
    const names = events.map((e) => e.event);
    expect(names.filter((n) => n === "delta").length).toBeGreaterThan(1);
    expect(names.slice(-2)).toEqual(["citations", "done"]);
    const streamed = events
      .filter((e) => e.event === "delta")
      .map((e) => e.data.text)
      .join("");
    const done = events.at(-1)?.data as { content: string; citations: unknown[] };
    expect(streamed).toBe(done.content);
    expect(events.at(-2)?.data.citations).toEqual(done.citations);
  });

  it("says the knowledge base does not cover a question with no sources, without calling a model", async () => {
    const res = await ask({ query: `zzyzx${run} flibbertigibbet` });
    const body = await res.json<Record<string, unknown>>();
    expect(body).toMatchObject({ outcome: "no_sources", content: NOT_IN_KNOWLEDGE_BASE, citations: [], model: "none" });
  });

  it("refuses bad input with 422 naming the field", async () => {
    const res = await callRaw("POST", "/api/rag/query", { token: user.access, json: { query: "  " } });
    expect(res.status).toBe(422);
    expect((await res.json<{ errors: { field: string }[] }>()).errors[0]?.field).toBe("body.query");
    expect((await callRaw("POST", "/api/rag/query", { token: user.access, json: { query: "x", top: 3 } })).status).toBe(
      422,
    );
  });

  it("needs a signed-in caller", async () => {
    expect((await callRaw("POST", "/api/rag/query", { token: "not-a-token", json: { query: "insulin" } })).status).toBe(
      401,
    );
  });
});

describe("POST /api/rag/query with OpenAI (the local OpenAI-compatible server, real SDK)", () => {
  it("sends policy, numbered sources, then the question, and maps the model's markers to citations", async () => {
    const tag = `order-${crypto.randomUUID()}`;
    const res = await ask(
      { query: `${tag} hypoglycaemia ${WORD} glucagon`, stream: true },
      { overrides: withOpenAi() },
    );
    const events = parseSse(await res.text());
    const done = events.at(-1);
    expect(done?.event).toBe("done");
    expect(done?.data).toMatchObject({ provider: "openai", model: "gpt-4o-mini", outcome: "answered" });
    expect((done?.data.cost_usd as number) > 0).toBe(true);
    expectVerbatimCitations(done?.data.citations as { chunk_id: string; snippet: string }[]);
    const [request] = await upstreamRequests(tag);
    const messages = request?.body.messages as { role: string; content: string }[];
    expect(messages.map((m) => m.role)).toEqual(["system", "user"]);
    const system = messages[0]?.content ?? "";
    expect(system.indexOf("Answer only from the numbered sources")).toBeLessThan(system.indexOf("[1] "));
    expect(system).toContain("does not cover");
    expect(messages[1]?.content).toContain(tag);
    expect(request?.body.stream).toBe(true);
  });

  it("drops a marker that cites no real source and counts it", async () => {
    const res = await ask(
      { query: `hypoglycaemia ${WORD}\n!reply Give glucose [1]. It also cures sepsis [7]. Antibiotics help [1, 9].` },
      { overrides: withOpenAi() },
    );
    const body = await res.json<{ content: string; invalid_citations: number; citations: { index: number }[] }>();
    expect(body.content).toBe("Give glucose [1]. It also cures sepsis . Antibiotics help [1].");
    expect(body.invalid_citations).toBe(2);
    expect(body.citations.map((c) => c.index)).toEqual([1]);
  });

  it("records the answer metrics: query outcome, stages, citations, dropped markers, model calls, tokens and cost", async () => {
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const res = await ask(
      { query: `hypoglycaemia ${WORD}\n!reply Give glucose [1]. It also cures sepsis [7].` },
      { overrides: withOpenAi() },
    );
    expect(res.status).toBe(200);
    // Metric name and labels (blob1, blob3...), and the value.
    const events = writes.mock.calls.map(([p]) => {
      const [name, , ...labels] = p?.blobs ?? [];
      return { series: [name, ...labels].join(":"), value: p?.doubles?.[0] };
    });
    writes.mockRestore();
    const valuesOf = (series: string) => events.filter((e) => e.series === series).map((e) => e.value);
    expect(valuesOf("rag_queries_total:query:answered")).toEqual([1]);
    expect(valuesOf("rag_citations_per_answer")).toEqual([1]);
    expect(valuesOf("rag_invalid_citations_total")).toEqual([1]);
    expect(valuesOf("rag_stage_duration_seconds:first_token")).toHaveLength(1);
    expect(valuesOf("rag_stage_duration_seconds:total")).toHaveLength(1);
    expect(valuesOf("llm_calls_total:answers:openai:gpt-4o-mini:ok")).toEqual([1]);
    expect(valuesOf("llm_tokens_total:answers:gpt-4o-mini:prompt")[0]).toBeGreaterThan(0);
    expect(valuesOf("llm_tokens_total:answers:gpt-4o-mini:completion")[0]).toBeGreaterThan(0);
    expect(valuesOf("llm_cost_usd_total:answers:gpt-4o-mini")[0]).toBeGreaterThan(0);
  });

  it("retries a 429 and then answers", async () => {
    const key = crypto.randomUUID();
    const res = await ask(
      { query: `sepsis ${WORD}\n!fault status=429 retry-after=0 times=1 key=${key}` },
      { overrides: withOpenAi() },
    );
    expect(res.status).toBe(200);
    expect((await res.json<{ outcome: string }>()).outcome).toBe("answered");
    expect(await upstreamRequests(key)).toHaveLength(2);
  });

  it("ends with a clear timeout when the model never answers", async () => {
    const query = `sepsis ${WORD}\n!fault status=hang key=${crypto.randomUUID()}`;
    const overrides = withOpenAi({ CHAT_FIRST_TOKEN_TIMEOUT_MS: "300", CHAT_MAX_RETRIES: "0" });
    const res = await ask({ query }, { overrides });
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: "UPSTREAM_TIMEOUT" });
    const streamed = parseSse(await (await ask({ query, stream: true }, { overrides })).text());
    expect(streamed.at(-1)).toMatchObject({ event: "error", data: { code: "UPSTREAM_TIMEOUT" } });
  });

  it("ends a malformed stream with an error event after the text that came", async () => {
    const res = await ask({ query: `sepsis ${WORD}\n!fault malformed=1`, stream: true }, { overrides: withOpenAi() });
    const events = parseSse(await res.text());
    expect(events[0]?.event).toBe("delta");
    expect(events.at(-1)).toMatchObject({ event: "error", data: { code: "UPSTREAM_UNAVAILABLE" } });
    expect(String(events.at(-1)?.data.message)).toMatch(/OpenAI/);
  });

  it("cancels the upstream call when the client disconnects", async () => {
    const key = `cancel-${crypto.randomUUID()}`;
    const res = await ask(
      { query: `sepsis ${WORD} ${key}\n!fault slow=400`, stream: true },
      { overrides: withOpenAi() },
    );
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel();
    let seen: { aborted: boolean }[] = [];
    for (let i = 0; i < 50 && !seen[0]?.aborted; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await upstreamRequests(key);
    }
    expect(seen[0]?.aborted).toBe(true);
  });

  it("redacts PHI before the question leaves (PHI_MODE=redact)", async () => {
    const tag = `phi-${crypto.randomUUID()}`;
    const query = `${tag} my patient John Smith, DOB 02/14/1980, email jsmith@example.org: sepsis ${WORD}?`;
    expect((await ask({ query }, { overrides: withOpenAi({ PHI_MODE: "redact" }) })).status).toBe(200);
    const [request] = await upstreamRequests(tag);
    const sent = JSON.stringify(request?.body.messages);
    expect(sent).not.toContain("John Smith");
    expect(sent).not.toContain("jsmith@example.org");
    expect(sent).not.toContain("02/14/1980");
  });

  it("refuses PHI with 422 and sends nothing (PHI_MODE=block)", async () => {
    const tag = `block-${crypto.randomUUID()}`;
    const query = `${tag} MRN: 12345678 sepsis ${WORD}?`;
    const res = await ask({ query }, { overrides: withOpenAi({ PHI_MODE: "block" }) });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ code: "PHI_BLOCKED" });
    expect(await upstreamRequests(tag)).toEqual([]);
  });

  it("records model, tokens, latency and cost per user", async () => {
    const rows = (await db.execute(
      sql`select provider, model, prompt_tokens, completion_tokens, cost_usd, latency_ms from llm_usage where user_id = ${user.id} and provider = 'openai' and outcome = 'answered'`,
    )) as unknown as {
      rows: { prompt_tokens: number; completion_tokens: number; cost_usd: number; latency_ms: number }[];
    };
    expect(rows.rows.length).toBeGreaterThan(0);
    for (const row of rows.rows) {
      expect(row.prompt_tokens).toBeGreaterThan(0);
      expect(row.completion_tokens).toBeGreaterThan(0);
      expect(Number(row.cost_usd)).toBeGreaterThan(0);
      expect(row.latency_ms).toBeGreaterThanOrEqual(0);
    }
  });
});
