import { describe, expect, it } from "vitest";
import { queryTerms } from "../../src/rag/bm25.ts";
import { SNIPPET_CHARS, snippetFor } from "../../src/rag/snippet.ts";

const terms = (query: string) => new Set(queryTerms(query).keys());
const filler = (n: number) => "Unrelated words about the weather and gardens fill this sentence. ".repeat(n);

describe("snippetFor", () => {
  it("returns a short chunk whole", () => {
    expect(snippetFor("  Insulin lowers blood glucose.  ", terms("insulin"))).toBe("Insulin lowers blood glucose.");
  });

  it("picks the window with the most distinct query words, from its sentence start, within the limit", () => {
    const text = `${filler(4)}Metformin is used first. Metformin and insulin together lower glucose in type 2 diabetes. ${filler(4)}`;
    const snippet = snippetFor(text, terms("insulin metformin diabetic glucose"));
    expect(snippet.length).toBeLessThanOrEqual(SNIPPET_CHARS);
    expect(snippet).toMatch(
      /^…Metformin is used first\. Metformin and insulin together lower glucose in type 2 diabetes\./,
    );
    expect(snippet.endsWith("…")).toBe(true);
  });

  it("matches stemmed forms (diabetic ~ diabetes)", () => {
    const text = `${filler(6)}Diabetic patients were followed. ${filler(6)}`;
    expect(snippetFor(text, terms("diabetes"))).toContain("Diabetic patients were followed.");
  });

  it("falls back to the chunk's beginning, cut on a word boundary, when nothing matches", () => {
    const snippet = snippetFor(filler(10), terms("zebra"));
    expect(snippet.startsWith("Unrelated words")).toBe(true);
    expect(snippet.endsWith("…")).toBe(true);
    expect(snippet.length).toBeLessThanOrEqual(SNIPPET_CHARS);
    expect(snippet.slice(0, -1)).not.toMatch(/\s$/);
  });
});
