import { describe, expect, it } from "vitest";
import { CitationFilter, citationsFor } from "../../src/rag/citations.ts";
import { buildPrompt, recentHistory, type SourcePassage } from "../../src/rag/prompt.ts";

const source = (index: number, text: string): SourcePassage => ({
  index,
  documentId: crypto.randomUUID(),
  externalId: null,
  title: `Source ${index}`,
  chunkId: crypto.randomUUID(),
  page: index === 1 ? 3 : null,
  headingPath: index === 2 ? ["Treatment", "Adults"] : [],
  text,
  score: 1 / index,
});

const streamThrough = (filter: CitationFilter, deltas: string[]) =>
  deltas.map((d) => filter.push(d)).join("") + filter.flush();

describe("CitationFilter", () => {
  it("keeps markers of real sources, drops invented ones and counts them", () => {
    const filter = new CitationFilter(2);
    expect(streamThrough(filter, ["Give glucose [1]. Cures all [7]. Both [2, 9]."])).toBe(
      "Give glucose [1]. Cures all . Both [2].",
    );
    expect(filter.cited).toEqual([1, 2]);
    expect(filter.dropped).toBe(2);
  });

  it("handles markers split across deltas", () => {
    const filter = new CitationFilter(3);
    const out = streamThrough(filter, ["Dose is 1 mg [", "1", "]", " and [", "4] [3", "]."]);
    expect(out).toBe("Dose is 1 mg [1] and  [3].");
    expect(filter.cited).toEqual([1, 3]);
    expect(filter.dropped).toBe(1);
  });

  it("never holds back ordinary brackets for long, and releases an unfinished one at the end", () => {
    const filter = new CitationFilter(1);
    expect(filter.push("See [note] here")).toBe("See [note] here");
    expect(filter.push("range [1-2")).toBe("range [1-2");
    expect(filter.push(" ends [1")).toBe(" ends ");
    expect(filter.flush()).toBe("[1");
    expect(filter.cited).toEqual([]);
  });
});

describe("citationsFor", () => {
  const sources = [
    source(
      1,
      "Hypoglycaemia is a glucose below 4 mmol/L. Give 15 g of fast-acting glucose. Recheck the glucose after 15 minutes.",
    ),
    source(2, "Glucagon 1 mg is given intramuscularly when the patient cannot swallow."),
  ];

  it("maps each cited source to its document and chunk, with the exact supporting text", () => {
    const answer = "Give 15 g of fast-acting glucose [1]. If swallowing is unsafe, glucagon 1 mg [2].";
    const citations = citationsFor(answer, [1, 2], sources);
    expect(citations.map((c) => c.index)).toEqual([1, 2]);
    expect(citations[0]).toMatchObject({
      document_id: sources[0]?.documentId,
      chunk_id: sources[0]?.chunkId,
      title: "Source 1",
      page: 3,
      score: 1,
    });
    for (const [i, c] of citations.entries()) expect(sources[i]?.text).toContain(c.snippet);
  });

  it("ignores numbers that name no source", () => {
    expect(citationsFor("text [3]", [3], sources)).toEqual([]);
  });
});

describe("buildPrompt", () => {
  it("orders policy with numbered sources, then history, then the question", () => {
    const prompt = buildPrompt({
      sources: [source(1, "Alpha text."), source(2, "Beta text.")],
      history: [
        { role: "user", content: "earlier question" },
        { role: "assistant", content: "earlier answer" },
      ],
      question: "the question",
      historyTokens: 1_000,
      disclaimer: "Check local protocols.",
    });
    expect(prompt.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
    const system = prompt.messages[0]?.content ?? "";
    expect(system).toContain("Check local protocols.");
    expect(system).toContain("[1] Source 1 (page 3)\nAlpha text.");
    expect(system).toContain("[2] Source 2 (Treatment > Adults)\nBeta text.");
    expect(system.indexOf("[1]")).toBeLessThan(system.indexOf("[2] Source 2"));
    expect(prompt.messages.at(-1)?.content).toBe("the question");
    expect(prompt.sources.map((s) => s.index)).toEqual([1, 2]);
  });

  it("keeps only the newest history that fits the token budget", () => {
    const history = [
      { role: "user" as const, content: "a".repeat(400) },
      { role: "assistant" as const, content: "b".repeat(400) },
      { role: "user" as const, content: "c".repeat(40) },
    ];
    expect(recentHistory(history, 110).map((t) => t.content[0])).toEqual(["b", "c"]);
    expect(recentHistory(history, 5)).toEqual([]);
  });
});
