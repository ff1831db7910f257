import { describe, expect, it } from "vitest";
import { BLOCK_SEPARATOR, chunkDocument } from "../../src/kb/chunk.ts";
import { analyze, termFrequencies } from "../../src/kb/terms.ts";

const sentence = (n: number) => `Sentence number ${n} says something about insulin dosing.`;
const paragraph = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => sentence(from + i)).join(" ");

describe("chunkDocument", () => {
  it("keeps whole sentences, respects the size and records offsets into the full text", () => {
    const blocks = [{ text: paragraph(1, 30), headingPath: ["Dosing"] }];
    const chunks = chunkDocument(blocks, { size: 300, overlap: 0 });
    const full = blocks.map((b) => b.text).join(BLOCK_SEPARATOR);
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) {
      expect(chunk.text.length).toBeLessThanOrEqual(300);
      expect(chunk.text).toMatch(/^Sentence number \d+/);
      expect(chunk.text).toMatch(/dosing\.$/);
      expect(full.slice(chunk.charStart, chunk.charEnd).trim()).toBe(chunk.text);
      expect(chunk.headingPath).toEqual(["Dosing"]);
    }
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
  });

  it("overlaps by whole trailing sentences, and always moves forward", () => {
    const chunks = chunkDocument([{ text: paragraph(1, 30), headingPath: [] }], { size: 300, overlap: 120 });
    for (let i = 1; i < chunks.length; i++) {
      const previous = chunks[i - 1]!;
      const current = chunks[i]!;
      expect(current.charStart).toBeGreaterThan(previous.charStart);
      expect(current.charStart).toBeLessThan(previous.charEnd);
      expect(previous.charEnd - current.charStart).toBeLessThanOrEqual(120);
    }
  });

  it("never crosses a block: pages and heading sections stay apart", () => {
    const chunks = chunkDocument(
      [
        { text: paragraph(1, 3), page: 1, headingPath: [] },
        { text: paragraph(4, 3), page: 2, headingPath: ["Guide", "Hand hygiene"] },
      ],
      { size: 10_000, overlap: 100 },
    );
    expect(chunks.map((c) => [c.page, c.headingPath])).toEqual([
      [1, []],
      [2, ["Guide", "Hand hygiene"]],
    ]);
    expect(chunks[1]?.text.startsWith("Sentence number 4")).toBe(true);
  });

  it("splits a sentence longer than the size at word boundaries", () => {
    const long = `${"word ".repeat(400).trim()}.`;
    const chunks = chunkDocument([{ text: long, headingPath: [] }], { size: 200, overlap: 0 });
    expect(chunks.length).toBeGreaterThanOrEqual(10);
    for (const chunk of chunks) expect(chunk.text.length).toBeLessThanOrEqual(200);
    expect(chunks.map((c) => c.text).join(" ")).toBe(long);
  });

  it("returns nothing for blank blocks", () => {
    expect(chunkDocument([{ text: "  \n ", headingPath: [] }], { size: 100, overlap: 10 })).toEqual([]);
  });
});

describe("analyze (the keyword analyzer)", () => {
  it.each([
    ["The patients were treated with insulin", ["patient", "were", "treat", "insulin"]],
    ["Hypoglycaemia: café-au-lait spots!", ["hypoglycaemia", "cafe", "au", "lait", "spot"]],
    ["COVID-19 and H1N1 in 2020", ["covid", "19", "h1n1", "2020"]],
    ["", []],
  ])("%s", (text, terms) => {
    expect(analyze(text)).toEqual(terms);
  });

  it("counts term frequencies", () => {
    expect(Object.fromEntries(termFrequencies("Cells and cell counts: cell."))).toEqual({ cell: 3, count: 1 });
  });
});
