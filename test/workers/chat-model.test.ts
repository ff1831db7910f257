import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { loadConfig } from "../../src/env.ts";
import { UpstreamError } from "../../src/errors.ts";
import { CircuitBreaker } from "../../src/llm/circuit-breaker.ts";
import { createChatModel } from "../../src/llm/index.ts";
import { type OpenAiChatConfig, openAiChatModel } from "../../src/llm/openai-chat.ts";
import type { ChatChunk, ChatRequest, PromptSource } from "../../src/llm/port.ts";

const loaded = loadConfig(env);
if (!loaded.ok) throw new Error(`test environment is invalid: ${JSON.stringify(loaded.issues)}`);
const config = loaded.config;
const stack = inject("stack");

const SOURCES: PromptSource[] = [
  { index: 1, title: "Insulin guide", text: "Insulin lowers blood glucose. It is injected under the skin." },
  { index: 2, title: "Metformin leaflet", text: "Metformin is taken with meals! Nausea is common at first." },
];

/** A request shaped like the answer service's: policy and numbered sources, then the question. */
const ask = (question: string, signal?: AbortSignal): ChatRequest => ({
  messages: [
    {
      role: "system",
      content: `Answer only from the numbered sources below.\n\nSources:\n\n${SOURCES.map((s) => `[${s.index}] ${s.title} (page 1)\n${s.text}`).join("\n\n")}`,
    },
    { role: "user", content: question },
  ],
  sources: SOURCES,
  question,
  maxOutputTokens: 200,
  ...(signal ? { signal } : {}),
});

const chat = (overrides: Partial<OpenAiChatConfig> = {}) =>
  openAiChatModel({
    OPENAI_API_KEY: "sk-test",
    OPENAI_BASE_URL: `${stack.openaiUrl}/v1`,
    CHAT_MODEL: "gpt-4o-mini",
    CHAT_TIMEOUT_MS: 5_000,
    CHAT_FIRST_TOKEN_TIMEOUT_MS: 3_000,
    CHAT_MAX_RETRIES: 2,
    // Failures in one test must not open the circuit for the next; the circuit tests use their own model.
    CHAT_CIRCUIT_FAILURES: 1_000,
    CHAT_CIRCUIT_COOLDOWN_SECONDS: 30,
    ...overrides,
  });

const collect = async (stream: AsyncIterable<ChatChunk>) => {
  const chunks: ChatChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
};
const textOf = (chunks: ChatChunk[]) => chunks.map((c) => (c.type === "delta" ? c.text : "")).join("");

/** Reads until the stream throws; the chunks that came first and the UpstreamError. */
const failure = async (stream: AsyncIterable<ChatChunk>) => {
  const chunks: ChatChunk[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk);
  } catch (error) {
    expect(error).toBeInstanceOf(UpstreamError);
    return { chunks, error: error as UpstreamError };
  }
  throw new Error(`the stream ended without an error: ${textOf(chunks)}`);
};

interface Recorded {
  aborted: boolean;
  body: { model: string; stream?: boolean; stream_options?: unknown; max_tokens?: number };
}
const requestsContaining = async (marker: string) => {
  const res = await fetch(`${stack.openaiUrl}/__requests?contains=${encodeURIComponent(marker)}`);
  return (await res.json()) as Recorded[];
};
/** The stand-in sees the connection close a moment after the client aborts. */
const untilAborted = async (marker: string) => {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const requests = await requestsContaining(marker);
    if (requests.length > 0 && requests.every((r) => r.aborted)) return requests;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the stand-in never saw the request with ${marker} aborted`);
};
const marker = () => `m-${crypto.randomUUID()}`;
const EXPECTED = "Insulin lowers blood glucose [1]. Metformin is taken with meals [2].";

describe("OpenAI chat model (real SDK against the local OpenAI stand-in)", () => {
  it("is what createChatModel picks when OPENAI_API_KEY is set, else the local composer", () => {
    // A model of its own: its circuit keeps the configuration it was first made with.
    const withKey = { ...config, OPENAI_API_KEY: "sk-test", CHAT_MODEL: "gpt-picked" };
    const openai = createChatModel(withKey);
    expect([openai.provider, openai.model]).toEqual(["openai", "gpt-picked"]);
    expect(createChatModel({ ...config, OPENAI_API_KEY: undefined }).provider).toBe("local");
  });

  it("streams the deltas in order, then the usage the server reported", async () => {
    const tag = marker();
    const chunks = await collect(chat().stream(ask(`${tag} What lowers glucose?`)));

    expect(chunks.filter((c) => c.type === "delta").length).toBeGreaterThan(5);
    expect(textOf(chunks)).toBe(EXPECTED);
    const last = chunks.at(-1);
    expect(chunks.filter((c) => c.type === "usage")).toEqual([last]);
    expect(last).toEqual({
      type: "usage",
      usage: { promptTokens: expect.any(Number), completionTokens: Math.ceil(EXPECTED.length / 4) },
    });
    const [request] = await requestsContaining(tag);
    expect(request?.aborted).toBe(false);
    expect(request?.body).toMatchObject({
      model: "gpt-4o-mini",
      stream: true,
      stream_options: { include_usage: true },
      // Not api.openai.com: the parameter every compatible server knows.
      max_tokens: 200,
    });
  });

  it("estimates the usage when the server sends none", async () => {
    const request = ask("!fault no-usage\nWhat lowers glucose?");
    const chunks = await collect(chat().stream(request));
    const prompt = request.messages.map((m) => m.content).join("\n");
    expect(chunks.at(-1)).toEqual({
      type: "usage",
      usage: { promptTokens: Math.ceil(prompt.length / 4), completionTokens: Math.ceil(EXPECTED.length / 4) },
    });
  });

  it("passes on whatever the model says, invented citations included", async () => {
    const chunks = await collect(chat().stream(ask("!reply Take it at night [9].")));
    expect(textOf(chunks)).toBe("Take it at night [9].");
  });

  it("also answers without streaming (the stand-in, for other clients)", async () => {
    const res = await fetch(`${stack.openaiUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer sk-test", "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: ask("What lowers glucose?").messages }),
    });
    const body = (await res.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0]).toMatchObject({ message: { content: EXPECTED }, finish_reason: "stop" });
  });

  it("retries a 429 before the first delta, then streams", async () => {
    const tag = marker();
    const chunks = await collect(chat().stream(ask(`!fault status=429 retry-after=0 times=1 key=${tag}\nWhy?`)));
    expect(textOf(chunks)).toBe(EXPECTED);
    expect(await requestsContaining(tag)).toHaveLength(2);
  });

  it("gives up after CHAT_MAX_RETRIES with a clear rate-limit error", async () => {
    const tag = marker();
    const { error } = await failure(chat().stream(ask(`!fault status=429 retry-after=0 key=${tag}`)));
    expect(error.message).toBe("OpenAI is rate limiting chat requests (429).");
    expect(error.transient).toBe(true);
    expect(await requestsContaining(tag)).toHaveLength(3);
  });

  it("hands a Retry-After longer than the first-token budget back to the caller at once", async () => {
    const tag = marker();
    const { error } = await failure(chat().stream(ask(`!fault status=429 retry-after=60 key=${tag}`)));
    expect(error.retryAfterMs).toBe(60_000);
    expect(await requestsContaining(tag)).toHaveLength(1);
  });

  it("times out a server that never answers at the first-token deadline", async () => {
    const tag = marker();
    const started = Date.now();
    const { error } = await failure(
      chat({ CHAT_FIRST_TOKEN_TIMEOUT_MS: 300 }).stream(ask(`!fault status=hang key=${tag}`)),
    );
    expect(error.code).toBe("UPSTREAM_TIMEOUT");
    expect(error.message).toBe("OpenAI sent no answer within 300 ms (CHAT_FIRST_TOKEN_TIMEOUT_MS).");
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(await untilAborted(tag)).toHaveLength(1);
  });

  it("times out a stream that stalls mid-answer at the whole-answer deadline, without retrying", async () => {
    const tag = marker();
    const { chunks, error } = await failure(
      chat({ CHAT_TIMEOUT_MS: 800 }).stream(ask(`!fault stall-after=2 key=${tag}`)),
    );
    expect(textOf(chunks)).toBe("Insulin lowers ");
    expect(error.message).toBe("OpenAI did not finish the answer within 800 ms (CHAT_TIMEOUT_MS).");
    expect(await untilAborted(tag)).toHaveLength(1);
  });

  it("turns a data line that is not JSON into a clear error, and retries it before the first delta", async () => {
    const late = marker();
    const { chunks, error } = await failure(chat().stream(ask(`!fault malformed=1 key=${late}`)));
    expect(textOf(chunks)).toBe("Insulin ");
    expect(error.message).toBe("OpenAI sent a malformed chat stream: a data line is not valid JSON.");
    expect(await requestsContaining(late)).toHaveLength(1);

    const early = marker();
    const retried = await collect(chat().stream(ask(`!fault malformed=0 times=1 key=${early}`)));
    expect(textOf(retried)).toBe(EXPECTED);
    expect(await requestsContaining(early)).toHaveLength(2);
  });

  it.each([
    ["truncate=3", "it ended before the answer was finished"],
    ["no-choices=3", "a chunk has no choices"],
  ])("turns a stream that breaks the protocol (%s) into a clear error", async (fault, reason) => {
    const { chunks, error } = await failure(chat().stream(ask(`!fault ${fault} key=${marker()}`)));
    expect(textOf(chunks)).toBe("Insulin lowers blood ");
    expect(error.message).toBe(`OpenAI sent a malformed chat stream: ${reason}.`);
  });

  it("stops the upstream call and ends quietly when the caller aborts mid-answer", async () => {
    const tag = marker();
    const controller = new AbortController();
    const chunks: ChatChunk[] = [];
    for await (const chunk of chat().stream(ask(`!fault slow=200 key=${tag}`, controller.signal))) {
      chunks.push(chunk);
      controller.abort();
    }
    expect(chunks).toEqual([{ type: "delta", text: "Insulin " }]);
    expect(await untilAborted(tag)).toHaveLength(1);
  });

  it("stops the upstream call when the caller aborts before the first byte", async () => {
    const tag = marker();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    expect(await collect(chat().stream(ask(`!fault status=hang key=${tag}`, controller.signal)))).toEqual([]);
    expect(await untilAborted(tag)).toHaveLength(1);
  });

  it("treats a 401 as permanent and names OPENAI_API_KEY", async () => {
    const tag = marker();
    const { error } = await failure(chat({ OPENAI_API_KEY: "sk-invalid-key" }).stream(ask(tag)));
    expect(error.message).toBe("OpenAI refused the API key (401): check OPENAI_API_KEY.");
    expect(error.transient).toBe(false);
    expect(await requestsContaining(tag)).toHaveLength(1);
  });

  it("opens the circuit after CHAT_CIRCUIT_FAILURES failures, fails fast, then lets one trial through", async () => {
    const model = `gpt-circuit-${crypto.randomUUID()}`;
    const tag = marker();
    const breaking = chat({
      CHAT_MODEL: model,
      CHAT_MAX_RETRIES: 0,
      CHAT_CIRCUIT_FAILURES: 2,
      CHAT_CIRCUIT_COOLDOWN_SECONDS: 1,
    });
    // A 400 is our request's fault: it does not count.
    for (let i = 0; i < 3; i++) await failure(breaking.stream(ask(`!fault status=400 key=${marker()}`)));
    for (let i = 0; i < 2; i++) await failure(breaking.stream(ask(`!fault status=500 key=${tag}`)));

    const { error } = await failure(breaking.stream(ask(`!fault status=500 key=${tag}`)));
    expect(error.message).toBe("The chat model is failing; calls are paused for 1 s (circuit open).");
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(await requestsContaining(tag)).toHaveLength(2);

    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(textOf(await collect(breaking.stream(ask("Which drug lowers glucose?"))))).toBe(EXPECTED);
    expect(textOf(await collect(breaking.stream(ask("And with meals?"))))).toBe(EXPECTED);
  });
});

describe("circuit breaker", () => {
  const clock = () => {
    let now = 0;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  };
  const breaker = (time: ReturnType<typeof clock>) => new CircuitBreaker({ failures: 3, cooldownMs: 1_000, ...time });
  const fail = (b: CircuitBreaker, times: number) => {
    for (let i = 0; i < times; i++) {
      expect(b.acquire()).toBeUndefined();
      b.record("failure");
    }
  };

  it("opens after N consecutive failures and fails fast for the cooldown", () => {
    const time = clock();
    const b = breaker(time);
    fail(b, 2);
    expect(b.state).toBe("closed");
    fail(b, 1);
    expect(b.state).toBe("open");
    time.advance(400);
    expect(b.acquire()).toBe(600);
  });

  it("counts consecutive failures: a success resets the count, a call without a verdict leaves it", () => {
    const b = breaker(clock());
    fail(b, 2);
    b.acquire();
    b.record("success");
    fail(b, 2);
    b.acquire();
    b.record("no-verdict");
    expect(b.state).toBe("closed");
    fail(b, 1);
    expect(b.state).toBe("open");
  });

  it("lets one trial through after the cooldown: success closes, failure reopens", () => {
    const time = clock();
    const b = breaker(time);
    fail(b, 3);
    time.advance(1_000);
    expect(b.state).toBe("half-open");
    expect(b.acquire()).toBeUndefined();
    expect(b.acquire()).toBe(1_000); // the trial is running: others still wait
    b.record("failure");
    expect(b.state).toBe("open");

    time.advance(1_000);
    expect(b.acquire()).toBeUndefined();
    b.record("success");
    expect(b.state).toBe("closed");
    expect(b.acquire()).toBeUndefined();
  });

  it("frees the trial slot when the trial ends without a verdict, or is not recorded for a cooldown", () => {
    const time = clock();
    const b = breaker(time);
    fail(b, 3);
    time.advance(1_000);
    expect(b.acquire()).toBeUndefined();
    b.record("no-verdict");
    expect(b.state).toBe("half-open");
    expect(b.acquire()).toBeUndefined();
    time.advance(999);
    expect(b.acquire()).toBe(1);
    time.advance(1); // its caller walked away without recording
    expect(b.acquire()).toBeUndefined();
  });
});
