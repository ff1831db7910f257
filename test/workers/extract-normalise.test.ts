import { describe, expect, it } from "vitest";
import { normaliseText } from "../../src/kb/extract/normalise.ts";
import { dropRunningLines, type PdfTextItem, pageLines } from "../../src/kb/extract/pdf-layout.ts";

describe("normaliseText", () => {
  it.each([
    ["composes to NFC", "cafe\u0301", "café"],
    ["unifies line endings", "a\r\nb\rc\u2028d", "a\nb\nc\nd"],
    ["turns NBSP, thin and ideographic spaces into spaces", "5\u00a0mg\u2009/\u3000day", "5 mg / day"],
    ["drops zero-width characters and soft hyphens", "in\u200bfec\u00adtion\ufeff", "infection"],
    ["replaces control characters", "a\u0007b\u0000c", "a b c"],
    ["collapses runs of spaces and tabs", "a  \t  b", "a b"],
    ["trims spaces around line breaks", "a   \n   b", "a\nb"],
    ["keeps one blank line between paragraphs", "a\n\n\n\n\nb", "a\n\nb"],
    ["turns form feeds into breaks", "page one\fpage two", "page one\npage two"],
    ["trims the ends", "\n\n  a  \n\n", "a"],
    ["leaves line-end hyphens alone by default", "inter-\nnational", "inter-\nnational"],
  ])("%s", (_, input, expected) => {
    expect(normaliseText(input)).toBe(expected);
  });

  it.each([
    ["inter-\nnational", "international"],
    ["inter- \n  national", "international"],
    ["évé-\nnement", "événement"],
    ["COVID-\n19", "COVID-\n19"],
    ["Anti-\nInflammatory", "Anti-\nInflammatory"],
    ["2019-\n2020", "2019-\n2020"],
    ["A list:\n- item", "A list:\n- item"],
  ])("de-hyphenates PDF line ends only before lower case: %j", (input, expected) => {
    expect(normaliseText(input, { dehyphenate: true })).toBe(expected);
  });
});

const item = (str: string, x: number, y: number, width = str.length * 6, fontSize = 12): PdfTextItem => ({
  str,
  x,
  y,
  width,
  fontSize,
  hasEOL: false,
});

describe("pageLines", () => {
  it("joins runs on a baseline, with a space only where there is a gap", () => {
    expect(pageLines([item("Hand", 72, 700, 24), item("washing", 96, 700), item("saves", 145, 700)])).toEqual([
      "Handwashing saves",
    ]);
  });

  it("starts a line on a new baseline and a paragraph after a gap of more than a line", () => {
    const lines = pageLines([item("one", 72, 700), item("two", 72, 686), item("three", 72, 640)]);
    expect(lines).toEqual(["one", "two", "", "three"]);
  });

  it("treats a move up the page (footer first, new column) as a new paragraph", () => {
    expect(pageLines([item("Footer", 72, 20), item("Body", 72, 700)])).toEqual(["Footer", "", "Body"]);
  });

  it("ends a line where PDF.js marks one", () => {
    const eol = { ...item("", 72, 700, 0), hasEOL: true };
    expect(pageLines([item("a", 72, 700), eol, item("b", 80, 700)])).toEqual(["a", "b"]);
  });
});

describe("dropRunningLines", () => {
  const page = (n: number, body: string[]) => ["Clinic handbook", ...body, `Page ${n} of 4`];

  it("drops headers and footers that recur, numbers aside, at the edges of most pages", () => {
    const pages = [page(1, ["Alpha"]), page(2, ["Beta"]), page(3, ["Gamma", "", "Delta"]), page(4, ["Epsilon"])];
    expect(dropRunningLines(pages)).toEqual([["Alpha"], ["Beta"], ["Gamma", "", "Delta"], ["Epsilon"]]);
  });

  it("keeps lines that recur in the body of pages", () => {
    const body = (w: string) => [
      `${w} one`,
      `${w} two`,
      `${w} three`,
      "Wash hands.",
      `${w} four`,
      `${w} five`,
      `${w} six`,
    ];
    const pages = [body("Alpha"), body("Beta"), body("Gamma")];
    expect(dropRunningLines(pages)).toEqual(pages);
  });

  it("leaves documents of one or two pages alone", () => {
    const pages = [page(1, ["Alpha"]), page(2, ["Beta"])];
    expect(dropRunningLines(pages)).toEqual(pages);
  });
});
