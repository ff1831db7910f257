import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/env.ts";
import { ApiError, isTransient, UpstreamError } from "../../src/errors.ts";
import { createEmbedder } from "../../src/kb/embed/index.ts";
import { embedText, LOCAL_DIMENSIONS, LOCAL_MODEL } from "../../src/kb/embed/local.ts";
import { type OpenAiEmbeddingConfig, openAiEmbedder } from "../../src/kb/embed/openai.ts";
import { runInWorkContext } from "../../src/observability/context.ts";
import { fakeEmbedding } from "../standins/fake-embedding.ts";

const loaded = loadConfig(env);
if (!loaded.ok) throw new Error(`test environment is invalid: ${JSON.stringify(loaded.issues)}`);
const config = loaded.config;
const stack = inject("stack");

const cosine = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] as number), 0);
const norm = (a: number[]) => Math.sqrt(cosine(a, a));

describe("local embedder", () => {
  const texts = [
    "Insulin lowers blood glucose.",
    "Ärztliche Schweigepflicht & café résumé",
    "ok",
    "The THE the patient",
    "insulin dose ".repeat(1_000),
  ];

  it.each(texts)(`is deterministic, unit-length and ${LOCAL_DIMENSIONS}-dimensional (text %#)`, (text) => {
    const first = embedText(text);
    expect(embedText(text)).toEqual(first);
    expect(first).toHaveLength(LOCAL_DIMENSIONS);
    expect(norm(first)).toBeCloseTo(1, 10);
  });

  it.each([
    [
      "The patient was given insulin to control her blood sugar.",
      "Insulin controls blood sugar in diabetic patients.",
      "Quarterly revenue grew in the finance department.",
    ],
    ["hypertension treatment guidelines", "guidelines for treating hypertention", "pediatric vaccination schedule"],
    ["How do I reset my password?", "Resetting a forgotten password", "Cardiac arrest resuscitation protocol"],
    ["dose of amoxicillin for children", "amoxicilin dosing in children", "wound dressing after surgery"],
  ])("puts %j closer to a similar text than to an unrelated one", (anchor, similar, unrelated) => {
    const a = embedText(anchor);
    expect(cosine(a, embedText(similar))).toBeGreaterThan(cosine(a, embedText(unrelated)) + 0.1);
  });

  it.each([" ... !? ", "the of and it", ""])("gives the zero vector to text without index terms (%j)", (text) => {
    expect(embedText(text)).toEqual(new Array(LOCAL_DIMENSIONS).fill(0));
  });

  it("is what createEmbedder picks without OPENAI_API_KEY, in input order", async () => {
    const embedder = createEmbedder({ ...config, OPENAI_API_KEY: undefined });
    expect(embedder.model).toBe(LOCAL_MODEL);
    expect(embedder.dimensions).toBe(LOCAL_DIMENSIONS);
    expect(await embedder.embed(["one", "two"])).toEqual([embedText("one"), embedText("two")]);
  });
});

describe("OpenAI embedder (real SDK against the local OpenAI stand-in)", () => {
  const openai = (overrides: Partial<OpenAiEmbeddingConfig> = {}) =>
    openAiEmbedder({
      OPENAI_API_KEY: "sk-test",
      OPENAI_BASE_URL: `${stack.openaiUrl}/v1`,
      EMBEDDING_MODEL: "text-embedding-3-small",
      EMBEDDING_BATCH_SIZE: 96,
      EMBEDDING_TIMEOUT_MS: 5_000,
      ...overrides,
    });
  const requestsContaining = async (marker: string) => {
    const res = await fetch(`${stack.openaiUrl}/__requests?contains=${encodeURIComponent(marker)}`);
    return (await res.json()) as {
      headers: Record<string, string>;
      body: { input: string[]; encoding_format?: string };
    }[];
  };
  const failure = async (work: Promise<unknown>) => {
    const error = await work.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UpstreamError);
    return error as UpstreamError;
  };
  const marker = () => `m-${crypto.randomUUID()}`;

  it("is what createEmbedder picks when OPENAI_API_KEY is set", () => {
    const embedder = createEmbedder({ ...config, OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${stack.openaiUrl}/v1` });
    expect(embedder.model).toBe("text-embedding-3-small");
    expect(embedder.dimensions).toBe(1536);
  });

  it("batches by EMBEDDING_BATCH_SIZE, keeps input order and decodes the SDK's base64", async () => {
    const tag = marker();
    const texts = Array.from({ length: 250 }, (_, i) => `${tag} passage ${i}`);
    const vectors = await openai().embed(texts);

    const requests = await requestsContaining(tag);
    expect(requests.map((r) => r.body.input.length)).toEqual([96, 96, 58]);
    expect(requests.every((r) => r.body.encoding_format === "base64")).toBe(true);
    expect(vectors).toHaveLength(250);
    for (const i of [0, 95, 96, 200, 249]) {
      const expected = fakeEmbedding(texts[i] as string, 1536);
      expect(vectors[i]).toHaveLength(1536);
      expect(cosine(vectors[i] as number[], expected)).toBeCloseTo(1, 5);
    }
  });

  it("sends the current trace on every request", async () => {
    const tag = marker();
    const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true };
    await runInWorkContext({ requestId: "embed-trace-test", trace }, () =>
      openai({ EMBEDDING_BATCH_SIZE: 2 }).embed([`${tag} a`, `${tag} b`, `${tag} c`]),
    );
    const requests = await requestsContaining(tag);
    expect(requests).toHaveLength(2);
    for (const r of requests) {
      expect(r.headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
      expect(r.headers["x-request-id"]).toBe("embed-trace-test");
    }
  });

  it("waits as a 429's Retry-After says, then succeeds", async () => {
    const tag = marker();
    const started = Date.now();
    const vectors = await openai().embed([`!fault status=429 retry-after=1 times=1 key=${tag}`, `${tag} text`]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(vectors).toHaveLength(2);
    expect(await requestsContaining(tag)).toHaveLength(2);
  });

  it("hands a long Retry-After back to the caller instead of waiting", async () => {
    const tag = marker();
    const error = await failure(openai().embed([`!fault status=429 retry-after=120 key=${tag}`]));
    expect(error.transient).toBe(true);
    expect(error.retryAfterMs).toBe(120_000);
    expect(await requestsContaining(tag)).toHaveLength(1);
  });

  it("retries a 500 a bounded number of times, then fails clearly", async () => {
    const tag = marker();
    const error = await failure(openai().embed([`!fault status=500 key=${tag}`]));
    expect(error.code).toBe("UPSTREAM_UNAVAILABLE");
    expect(error.message).toMatch(/OpenAI failed to create embeddings \(500\)/);
    expect(isTransient(error)).toBe(true);
    expect(await requestsContaining(tag)).toHaveLength(4);
  });

  it("gives up on a hung request after EMBEDDING_TIMEOUT_MS", async () => {
    const tag = marker();
    const error = await failure(openai({ EMBEDDING_TIMEOUT_MS: 300 }).embed([`!fault status=hang key=${tag}`]));
    expect(error.code).toBe("UPSTREAM_TIMEOUT");
    expect(error.message).toBe("OpenAI did not answer within 300 ms.");
    expect(isTransient(error)).toBe(true);
    expect(await requestsContaining(tag)).toHaveLength(4);
  });

  it("treats a 401 as permanent and does not retry it", async () => {
    const tag = marker();
    const error = await failure(openai({ OPENAI_API_KEY: "sk-invalid-key" }).embed([tag]));
    expect(error.message).toMatch(/OpenAI refused the API key \(401\): check OPENAI_API_KEY/);
    expect(isTransient(error)).toBe(false);
    expect(await requestsContaining(tag)).toHaveLength(1);
  });

  it("treats a 400 as permanent and says why", async () => {
    const error = await failure(openai().embed([""]));
    expect(error.message).toMatch(/OpenAI rejected the embedding request \(400\): .*empty strings/);
    expect(isTransient(error)).toBe(false);
  });

  it("refuses a model whose dimension it does not know", () => {
    expect(() => openai({ EMBEDDING_MODEL: "mystery-embedder" })).toThrow(/EMBEDDING_MODEL mystery-embedder/);
  });

  it("makes no request for no texts", async () => {
    expect(await openai({ OPENAI_BASE_URL: "http://127.0.0.1:9/v1" }).embed([])).toEqual([]);
  });
});

describe("isTransient", () => {
  it.each([
    [new UpstreamError("UPSTREAM_UNAVAILABLE", "x", { transient: true }), true],
    [new UpstreamError("UPSTREAM_UNAVAILABLE", "x", { transient: false }), false],
    [new ApiError("UPSTREAM_TIMEOUT", "x"), true],
    [new ApiError("BAD_ENVIRONMENT", "x"), false],
    [new ApiError("VALIDATION_FAILED", "x"), false],
    [new Error("connection reset"), true],
  ])("%s -> %s", (error, expected) => {
    expect(isTransient(error)).toBe(expected);
  });
});
