import { describe, expect, it } from "vitest";
import type { ApiError } from "../../src/errors.ts";
import { detectFormat, type FormatHints } from "../../src/kb/extract/index.ts";
import type { DocumentFormat } from "../../src/kb/extract/port.ts";
import { concat, docx, pngBytes, utf8, utf16, wordParagraph, zip } from "../fixtures/kb/generate.ts";
import { samples } from "../fixtures/kb/samples.ts";

const thrown = (run: () => unknown): ApiError => {
  try {
    run();
  } catch (error) {
    return error as ApiError;
  }
  throw new Error("expected detectFormat to throw");
};

describe("detectFormat: from the bytes, not the name", () => {
  it.each<[string, Uint8Array, FormatHints, DocumentFormat]>([
    ["the CDC PDF", samples.cdcPdf.bytes, { filename: samples.cdcPdf.name }, "pdf"],
    ["a PDF named .txt", samples.cdcPdf.bytes, { filename: "notes.txt", contentType: "text/plain" }, "pdf"],
    ["a PDF header after some junk", concat([utf8("junk\n"), samples.cdcPdf.bytes]), {}, "pdf"],
    ["a DOCX", docx(wordParagraph("Hello")), { filename: "a.docx" }, "docx"],
    ["a DOCX named .pdf", docx(wordParagraph("Hello")), { filename: "a.pdf", contentType: "application/pdf" }, "docx"],
    ["the OHDSI HTML fragment, no hints", samples.ohdsiHtml.bytes, {}, "html"],
    [
      "a full HTML page named .txt",
      utf8("<!DOCTYPE html><html><body><p>Hi</p></body></html>"),
      { filename: "a.txt" },
      "html",
    ],
    ["an HTML page behind a comment", utf8("<!-- saved -->\n<html><p>Hi</p></html>"), {}, "html"],
    ["one block tag, named .html", utf8("Intro <p>Hi</p>"), { filename: "page.html" }, "html"],
    ["one block tag, typed text/html", utf8("Intro <p>Hi</p>"), { contentType: "text/html; charset=utf-8" }, "html"],
    ["the MedlinePlus Markdown, no hints", samples.medlineplusMarkdown.bytes, {}, "markdown"],
    ["plain prose named .md", utf8("Just a note."), { filename: "NOTE.MD" }, "markdown"],
    ["plain prose typed text/markdown", utf8("Just a note."), { contentType: "text/markdown" }, "markdown"],
    ["a README with an HTML banner", utf8('<div align="center"><p>Logo</p></div>\n\n# Title\n\nText'), {}, "markdown"],
    ["a bulleted list", utf8("Bring:\n- gloves\n- masks\n"), {}, "markdown"],
    ["plain prose", utf8("Wash hands for 20 seconds.\nDry them well."), { filename: "a.txt" }, "text"],
    ["UTF-8 with a BOM", concat([new Uint8Array([0xef, 0xbb, 0xbf]), utf8("Hello")]), {}, "text"],
    ["UTF-16 LE with a BOM", utf16("Hello, world", "le"), {}, "text"],
    ["UTF-16 BE with a BOM", utf16("# Title\n\nBody", "be"), {}, "markdown"],
  ])("%s → %s", (_, bytes, hints, format) => {
    expect(detectFormat(bytes, hints).format).toBe(format);
  });

  it("gives the type to store the upload under", () => {
    expect(detectFormat(samples.cdcPdf.bytes, { contentType: "text/plain" })).toEqual({
      format: "pdf",
      mimeType: "application/pdf",
    });
    expect(detectFormat(docx(wordParagraph("x"))).mimeType).toBe(
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    );
  });
});

describe("detectFormat: refusals", () => {
  it.each<[string, Uint8Array, string]>([
    ["a ZIP renamed .pdf", zip({ "notes.txt": "hello" }), "a ZIP archive"],
    ["an XLSX", zip({ "[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>" }), "an Excel workbook"],
    ["a PPTX", zip({ "ppt/presentation.xml": "<p/>" }), "a PowerPoint presentation"],
    [
      "an ODT",
      zip({ mimetype: "application/vnd.oasis.opendocument.text", "content.xml": "<c/>" }),
      "an OpenDocument file",
    ],
    ["a PNG renamed .txt", pngBytes(), "a PNG image"],
    ["a JPEG", new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), "a JPEG image"],
    ["a gzip archive", new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0]), "a gzip archive"],
    ["an ELF executable", new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), "an executable"],
    ["a legacy .doc", new Uint8Array([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0]), "a legacy Office file"],
    ["an RTF document", utf8("{\\rtf1\\ansi Hello}"), "an RTF document"],
    ["Windows-1252 text", utf8("Caf? au lait, 5 ?C").map((b) => (b === 0x3f ? 0xe9 : b)), "text in a legacy encoding"],
    ["UTF-16 without a BOM", utf16("Hello", "le").subarray(2), "binary data"],
    ["text with NUL bytes", utf8("abc\u0000def"), "binary data"],
  ])("%s → 415 naming what it is", (_, bytes, what) => {
    const error = thrown(() => detectFormat(bytes, { filename: "upload.pdf" }));
    expect(error.status).toBe(415);
    expect(error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    expect(error.message).toContain(`The file "upload.pdf" looks like ${what}`);
    expect(error.message).toContain("Upload PDF (with a text layer), DOCX, HTML, Markdown or plain text");
  });

  it("a truncated ZIP (or DOCX) is a 422 that asks for the file again", () => {
    const truncated = docx(wordParagraph("Hello")).subarray(0, 100);
    const error = thrown(() => detectFormat(truncated, { filename: "report.docx" }));
    expect(error.status).toBe(422);
    expect(error.message).toBe(
      'The file "report.docx" is a damaged or truncated ZIP archive (a DOCX is one); upload it again.',
    );
  });

  it("an empty file is a 422 on the file field", () => {
    const error = thrown(() => detectFormat(new Uint8Array(0), { filename: "empty.txt" }));
    expect(error.status).toBe(422);
    expect(error.errors).toEqual([{ field: "file", message: "is empty" }]);
  });
});
