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

const flat = (text: string) => text.replace(/\s+/g, " ").trim();
/** The quotes of an answer with the source number after each. */
const quotesOf = (answer: string) =>
  [...answer.replace("From the knowledge base: ", "").matchAll(/(.+?) \[(\d+)\](?: |$)/g)].map((m) => ({
    text: m[1] as string,
    index: Number(m[2]),
  }));

describe("composeAnswer", () => {
  it("quotes the paragraph that carries the question verbatim, followed by its source marker", () => {
    const answer = composeAnswer(request("What is the maximum daily dose of metformin?"));
    expect(answer).toBe(
      "From the knowledge base: Metformin is a biguanide. The maximum daily dose of metformin is 2550 mg, given in divided doses. Take it with meals to reduce stomach upset. [1]",
    );
  });

  it("quotes only text of the cited source, whitespace collapsed", () => {
    for (const question of ["metformin dose eGFR", "maximum daily dose of metformin", "sepsis antibiotics"]) {
      const quotes = quotesOf(composeAnswer(request(question)));
      expect(quotes.length).toBeGreaterThan(0);
      for (const quote of quotes) expect(flat(sources[quote.index - 1]?.text ?? "")).toContain(quote.text);
    }
  });

  it("says the knowledge base does not cover a question that no passage carries", () => {
    const kb = [
      { index: 1, title: "Hypoglycemia", text: "Severe hypoglycemia can be treated with glucagon, a hormone." },
      {
        index: 2,
        title: "Optum",
        text: "Family enrollment, capitated plan information and exact birth date are not available.",
      },
      { index: 3, title: "Hygiene", text: "Soap and water should be used after caring for a patient with norovirus." },
    ];
    // "treated" matches, "anaphylaxis" nowhere; "capital" and "capitated" share a stem, "France" nothing;
    // "norovirus" alone is half of the question, not more.
    for (const question of [
      "How is anaphylaxis treated?",
      "What is the capital of France?",
      "How is norovirus treated?",
    ]) {
      expect(composeAnswer(request(question, { sources: kb }))).toBe(NOT_IN_KNOWLEDGE_BASE);
    }
    expect(composeAnswer(request("How is severe hypoglycemia treated?", { sources: kb }))).toBe(
      "From the knowledge base: Severe hypoglycemia can be treated with glucagon, a hormone. [1]",
    );
  });

  it("needs more than half of the question's weight: a word no source has outweighs common ones", () => {
    const kb = [
      { index: 1, title: "A", text: "Occupational health needs include vaccination of staff." },
      { index: 2, title: "B", text: "Vaccination needs a record." },
    ];
    expect(composeAnswer(request("Which vaccines do children need?", { sources: kb }))).toBe(NOT_IN_KNOWLEDGE_BASE);
    expect(composeAnswer(request("Which vaccination do staff need?", { sources: kb }))).toBe(
      "From the knowledge base: Occupational health needs include vaccination of staff. [1]",
    );
  });

  it("quotes the list a paragraph announces with it, not only the sentence that matched", () => {
    const kb = [
      {
        index: 1,
        title: "Hypoglycemia",
        headingPath: ["Hypoglycemia", "What are the symptoms of hypoglycemia?"],
        text: "The symptoms of low blood glucose tend to come on quickly. They may include:\n\nShaking\nSweating\nHunger",
      },
      {
        index: 2,
        title: "Hypoglycemia",
        text: "Blood glucose, or blood sugar, is the main sugar found in your blood.",
      },
    ];
    expect(composeAnswer(request("What are the symptoms of low blood sugar?", { sources: kb }))).toBe(
      "From the knowledge base: The symptoms of low blood glucose tend to come on quickly. They may include: Shaking Sweating Hunger [1]",
    );
  });

  it("quotes the items that follow a paragraph, and never starts a list from a sentence's tail", () => {
    const kb = [
      {
        index: 1,
        title: "Devices",
        text: "and reprocessed.\n\nThe Spaulding Classification sorts devices by risk.\n\n❑ Critical items enter sterile tissue.\n\n❑ Noncritical items touch intact skin.\n\nCleaning comes first.",
      },
    ];
    expect(composeAnswer(request("What are critical items in the Spaulding Classification?", { sources: kb }))).toBe(
      "From the knowledge base: The Spaulding Classification sorts devices by risk. ❑ Critical items enter sterile tissue. ❑ Noncritical items touch intact skin. [1]",
    );
  });

  it("prefers the section whose heading states the question", () => {
    const kb = [
      {
        index: 1,
        title: "Hypoglycemia",
        headingPath: ["Hypoglycemia", "What causes hypoglycemia?"],
        text: "Hypoglycemia is common in people who take insulin.",
      },
      {
        index: 2,
        title: "Hypoglycemia",
        headingPath: ["Hypoglycemia", "What is hypoglycemia?"],
        text: "Hypoglycemia means low glucose.",
      },
    ];
    expect(composeAnswer(request("What is hypoglycemia?", { sources: kb }))).toBe(
      "From the knowledge base: Hypoglycemia means low glucose. [2]",
    );
  });

  it("weighs and quotes a long paragraph sentence by sentence", () => {
    const filler = "The database records claims for each reimbursement transaction over time. ".repeat(5);
    const kb = [{ index: 1, title: "CCAE", text: `${filler}Claims are limited to 12 diagnoses per claim. ${filler}` }];
    expect(composeAnswer(request("How many diagnoses per claim?", { sources: kb }))).toBe(
      "From the knowledge base: Claims are limited to 12 diagnoses per claim. [1]",
    );
  });

  it("adds a second passage only when it is as good as the best, from whichever source, each quoted once", () => {
    const tied = [
      { index: 1, title: "A", text: "Doses are lower in the elderly." },
      { index: 2, title: "B", text: "Dosing is lower in the elderly." },
      { index: 3, title: "C", text: "Doses are lower in the elderly." },
      { index: 4, title: "D", text: "Doses are lower in the elderly at night." },
    ];
    expect(composeAnswer(request("elderly dosing", { sources: tied }))).toBe(
      "From the knowledge base: Doses are lower in the elderly. [1] Dosing is lower in the elderly. [2]",
    );
    const answer = composeAnswer(request("metformin dose eGFR"));
    expect(answer).toBe(
      "From the knowledge base: Metformin is contraindicated when eGFR is below 30. Reduce the dose of metformin when eGFR is 30 to 45. [2]",
    );
    expect(answer).not.toContain("[1]");
  });

  it("keeps the answer within the output token budget, always quoting one passage", () => {
    const tied = [
      { index: 1, title: "A", text: "Doses are lower in the elderly." },
      { index: 2, title: "B", text: "Dosing is lower in the elderly." },
    ];
    expect(composeAnswer(request("elderly dosing", { sources: tied, maxOutputTokens: 5 }))).toBe(
      "From the knowledge base: Doses are lower in the elderly. [1]",
    );
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
