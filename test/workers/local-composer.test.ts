import { describe, expect, it } from "vitest";
import { estimateTokens } from "../../src/kb/chunk.ts";
import { composeAnswer, localComposer, NOT_IN_KNOWLEDGE_BASE } from "../../src/llm/local-composer.ts";
import type { ChatChunk, ChatRequest, PromptSource } from "../../src/llm/port.ts";

const sources: PromptSource[] = [
  {
    index: 1,
    title: "Metformin dosing",
    text: "Metformin is a biguanide. The maximum daily dose of metformin is 2550 mg, given in divided doses.\nTake it with meals to reduce stomach upset.",
  },
  {
    index: 2,
    title: "Renal function",
    text: "Metformin is contraindicated when eGFR is below 30. Reduce the dose of metformin when eGFR is 30 to 45.",
  },
  { index: 3, title: "Sepsis", text: "Give antibiotics within one hour of recognising sepsis." },
];

const request = (question: string, overrides: Partial<ChatRequest> = {}): ChatRequest => ({
  messages: [
    { role: "system", content: "Answer from the numbered sources." },
    { role: "user", content: question },
  ],
  sources,
  question,
  maxOutputTokens: 800,
  ...overrides,
});

async function collect(req: ChatRequest, onChunk?: (chunk: ChatChunk) => void): Promise<ChatChunk[]> {
  const chunks: ChatChunk[] = [];
  for await (const chunk of localComposer().stream(req)) {
    chunks.push(chunk);
    onChunk?.(chunk);
  }
  return chunks;
}

const textOf = (chunks: ChatChunk[]) => chunks.map((c) => (c.type === "delta" ? c.text : "")).join("");

describe("composeAnswer", () => {
  it("quotes the best-matching sentence verbatim, followed by its source marker", () => {
    const answer = composeAnswer(request("What is the maximum daily dose of metformin?"));
    expect(
      answer.startsWith(
        "From the knowledge base: The maximum daily dose of metformin is 2550 mg, given in divided doses. [1]",
      ),
    ).toBe(true);
  });

  it("cites the sentences' own sources, each quoted exactly as in its source", () => {
    const answer = composeAnswer(request("metformin dose eGFR"));
    expect(answer).toBe(
      "From the knowledge base: Reduce the dose of metformin when eGFR is 30 to 45. [2] The maximum daily dose of metformin is 2550 mg, given in divided doses. [1] Metformin is contraindicated when eGFR is below 30. [2]",
    );
    for (const [, sentence, marker] of answer.matchAll(/(?:: |\] )(.+?) \[(\d)\]/g)) {
      expect(sources[Number(marker) - 1]?.text).toContain(sentence);
    }
  });

  it("matches stemmed forms and prefers the higher-ranked source on ties", () => {
    const tied = [
      { index: 1, title: "A", text: "Doses are lower in the elderly." },
      { index: 2, title: "B", text: "Dosing is lower in the elderly." },
    ];
    expect(composeAnswer(request("elderly dosing", { sources: tied }))).toBe(
      "From the knowledge base: Doses are lower in the elderly. [1] Dosing is lower in the elderly. [2]",
    );
  });

  it("quotes at most three sentences, two per source, each once, and skips weak matches", () => {
    const many = [
      {
        index: 1,
        title: "A",
        text: "Insulin lowers glucose. Insulin lowers glucose. Insulin lowers glucose fast. Insulin lowers glucose slowly.",
      },
      { index: 2, title: "B", text: "Insulin lowers glucose at night. Insulin is stored cold." },
    ];
    const answer = composeAnswer(request("does insulin lower glucose", { sources: many }));
    expect(answer).toBe(
      "From the knowledge base: Insulin lowers glucose. [1] Insulin lowers glucose fast. [1] Insulin lowers glucose at night. [2]",
    );
    expect(answer).not.toContain("stored cold");
  });

  it("keeps the answer within the output token budget, always quoting one sentence", () => {
    const answer = composeAnswer(request("metformin dose eGFR", { maxOutputTokens: 10 }));
    expect(answer).toBe("From the knowledge base: Reduce the dose of metformin when eGFR is 30 to 45. [2]");
  });

  it("says the knowledge base does not cover the question when nothing matches", () => {
    expect(composeAnswer(request("pediatric asthma inhaler technique"))).toBe(NOT_IN_KNOWLEDGE_BASE);
    expect(composeAnswer(request("metformin", { sources: [] }))).toBe(NOT_IN_KNOWLEDGE_BASE);
    expect(composeAnswer(request("What should we do, and when?"))).toBe(NOT_IN_KNOWLEDGE_BASE);
    expect(NOT_IN_KNOWLEDGE_BASE).not.toMatch(/\[\d+\]/);
  });

  it("is deterministic", () => {
    const question = "metformin dose in renal impairment (eGFR)";
    expect(composeAnswer(request(question))).toBe(composeAnswer(request(question)));
  });
});

describe("localComposer", () => {
  it("names itself", () => {
    expect(localComposer()).toMatchObject({ provider: "local", model: "local-extractive-v1" });
  });

  it("streams the answer in several deltas, then estimated usage", async () => {
    const req = request("What is the maximum daily dose of metformin?");
    const chunks = await collect(req);
    const deltas = chunks.filter((c) => c.type === "delta");
    expect(deltas.length).toBeGreaterThan(5);
    expect(textOf(chunks)).toBe(composeAnswer(req));
    expect(chunks.at(-1)).toEqual({
      type: "usage",
      usage: {
        promptTokens: estimateTokens(req.messages.map((m) => m.content).join("\n")),
        completionTokens: estimateTokens(composeAnswer(req)),
      },
    });
  });

  it("streams the no-match answer too", async () => {
    const chunks = await collect(request("zebra", { sources: [] }));
    expect(textOf(chunks)).toBe(NOT_IN_KNOWLEDGE_BASE);
    expect(chunks.at(-1)?.type).toBe("usage");
  });

  it("stops when the request is aborted", async () => {
    const controller = new AbortController();
    const chunks = await collect(request("metformin dose eGFR", { signal: controller.signal }), () =>
      controller.abort(),
    );
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.type).toBe("delta");
  });

  it("yields nothing when aborted before it starts", async () => {
    expect(await collect(request("metformin", { signal: AbortSignal.abort() }))).toEqual([]);
  });
});
