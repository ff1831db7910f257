import { describe, expect, it } from "vitest";
import type { ApiError } from "../../src/errors.ts";
import { extractDocument } from "../../src/kb/extract/index.ts";
import {
  deflatedZip,
  docx,
  docxParts,
  pdf,
  pdfTextPage,
  pdfTextString,
  pngBytes,
  utf8,
  utf16,
  withPdfInfo,
  wordCoreProperties,
  wordParagraph,
  wordTable,
  zip,
} from "../fixtures/kb/generate.ts";
import { edgeCases, samples } from "../fixtures/kb/samples.ts";

// Phrases are checked with line breaks flattened: PDF text keeps the page's lines.
const flat = (text: string) => text.replace(/\s+/g, " ");

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    return error as ApiError;
  }
  throw new Error("expected the extraction to fail");
}

describe("real samples", () => {
  it("CDC outpatient guide (PDF): ten pages, numbered, running header and page numbers gone", async () => {
    const { bytes, name } = samples.cdcPdf;
    const { format, mimeType, document } = await extractDocument(bytes, { filename: name });
    expect(format).toBe("pdf");
    expect(mimeType).toBe("application/pdf");
    expect(document.blocks.map((b) => b.page)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(document.blocks.every((b) => b.headingPath.length === 0 && b.text.length > 1000)).toBe(true);
    const page = (n: number) => flat(document.blocks[n - 1]!.text);
    expect(page(1)).toMatch(/^FUNDAMENTAL ELEMENTS NEEDED TO PREVENT TRANSMISSION OF INFECTIOUS AGENTS/);
    expect(page(3)).toContain("Adhere to Standard Precautions");
    expect(page(5)).toContain("Key recommendations for use of PPE in outpatient settings:");
    expect(page(6)).toMatch(/^The Campaign is led by the Centers for Disease Control and Prevention \(CDC\)/);
    expect(page(8)).toContain("Cleaning to remove organic material must always precede disinfection");
    expect(page(9)).toContain("Respiratory Hygiene/Cough Etiquette is an element of Standard Precautions");
    expect(page(5)).not.toContain("Respiratory Hygiene/Cough Etiquette is an element");
    for (const block of document.blocks) expect(block.text).not.toContain("Version 2.3 - September 2016");
    // PDF.js detaches what it is given; the caller's bytes must survive (they are hashed and stored).
    expect(bytes.byteLength).toBe(121_284);
  });

  it("MedlinePlus hypoglycemia (Markdown): heading paths, link text without URLs, no front matter", async () => {
    const { bytes, name } = samples.medlineplusMarkdown;
    const { format, document } = await extractDocument(bytes, { filename: name });
    expect(format).toBe("markdown");
    expect(document.title).toBe("Hypoglycemia");
    expect(document.blocks.map((b) => b.headingPath)).toEqual([
      ["Hypoglycemia", "What is blood glucose?"],
      ["Hypoglycemia", "What is hypoglycemia?"],
      ["Hypoglycemia", "What causes hypoglycemia?"],
      ["Hypoglycemia", "What are the symptoms of hypoglycemia?"],
      ["Hypoglycemia", "How is hypoglycemia diagnosed?"],
      ["Hypoglycemia", "What are the treatments for hypoglycemia?"],
      ["Hypoglycemia", "Can hypoglycemia be prevented?"],
    ]);
    expect(document.blocks[3]!.text).toBe(
      "The symptoms of low blood glucose tend to come on quickly. The symptoms can be different for everyone, " +
        "but they may include:\n\nShaking\nSweating\nNervousness or anxiety\nIrritability or confusion\nDizziness\nHunger",
    );
    expect(document.blocks[0]!.text).toMatch(/^Blood glucose, or blood sugar, is the main sugar/);
    const all = document.blocks.map((b) => b.text).join("\n");
    expect(all).not.toMatch(/medlineplus\.gov|\]\(|source_url|content_hash|^\* /m);
  });

  it("OHDSI data sources (HTML fragment): all text kept, h4 sections, entities decoded", async () => {
    const { bytes, name } = samples.ohdsiHtml;
    const { format, document } = await extractDocument(bytes, { filename: name });
    expect(format).toBe("html");
    expect(document.title).toBeUndefined();
    expect(document.blocks.map((b) => b.headingPath)).toEqual([
      [],
      ["1. IBM MarketScan® Commercial Database (CCAE)"],
      ["2. IBM MarketScan® Medicare Supplemental and Coordination of Benefits Database (MDCR)"],
      ["3. IBM MarketScan® Multi-state Medicaid Database (MDCD)"],
      ["4. Optum® de-identified Clinformatics® Datamart, Extended - socioeconomic Status (Optum)"],
      ["Meta-analysis"],
    ]);
    expect(document.blocks[0]!.text).toBe(
      "This study will be conducted in four observational health databases:\n\n" +
        "IBM MarketScan® Commercial Claims and Encounters Database (CCAE)\n\n" +
        "IBM MarketScan® Medicare Supplemental Database (MDCR)\n\n" +
        "IBM MarketScan® Multi-state Medicaid Database (MDCD)\n\n" +
        "OptumInsight's de-identified ClinformaticsTM Datamart, Extended - Socioeconomic Status (Optum)\n\n" +
        "Estimates across databasess were combined using the DerSimonian and Laird meta-analysis method assuming " +
        "random effects. Each database and the meta-analysis method is described below:",
    );
    expect(document.blocks[1]!.text).toContain("\n\nThere is a data lag; Truven only sends records that are 100% paid");
    expect(document.blocks[4]!.text).toContain("is available at: https://github.com/OHDSI/ETL-CDMBuilder.");
    expect(document.blocks[5]!.text).toContain("(I2 <40%)");
    expect(document.blocks.map((b) => b.text).join("\n")).not.toMatch(/<\/?[a-z]|&[a-z]+;/);
  });
});

describe("HTML", () => {
  it("keeps the main text only, with heading paths, entities, lists and table cells", async () => {
    const { bytes, name } = edgeCases.html;
    const { format, document } = await extractDocument(bytes, { filename: name });
    expect(format).toBe("html");
    expect(document).toEqual({
      title: "Hand hygiene & gloves – Clinic handbook",
      blocks: [
        {
          text: "Infection control team\n\nClean hands prevent infections — every time, in the café or the clinic. 5 < 10 && 10 > 5.",
          headingPath: ["Hand hygiene"],
        },
        {
          text: "Before touching a patient\n\nAfter exposure to body fluids",
          headingPath: ["Hand hygiene", "When to clean hands"],
        },
        {
          text: "Rub for 20–30 seconds.\nLet hands dry.",
          headingPath: ["Hand hygiene", "When to clean hands", "Alcohol rub"],
        },
        {
          text: "Use soap when hands are visibly soiled.",
          headingPath: ["Hand hygiene", "When to clean hands", "Soap and water"],
        },
        {
          text: "Size | Palm width\nSmall | 7–8 cm\nLarge | 9–10 cm\n\nReviewed 2024",
          headingPath: ["Hand hygiene", "Glove sizes"],
        },
      ],
    });
    expect(JSON.stringify(document)).not.toContain("LEAK");
  });

  it("without <main> keeps the page body but not its navigation, header or footer", async () => {
    const html =
      "<html><head><title>Visiting hours</title></head><body><header>Site name</header>" +
      "<nav>Home | About</nav><h2>Wards</h2><p>Visits 2&ndash;8 pm.</p><div class=x>Ask at reception.</div>" +
      '<div role="banner">Banner</div><footer>&copy; Trust</footer></body></html>';
    const { document } = await extractDocument(utf8(html), { filename: "visiting.html" });
    expect(document).toEqual({
      title: "Visiting hours",
      blocks: [{ text: "Visits 2–8 pm.\n\nAsk at reception.", headingPath: ["Wards"] }],
    });
  });

  it("takes the first h1 as title when there is no <title>, and a new h2 closes an h3", async () => {
    const html = "<h1>Guide</h1><h2>A</h2><h3>A.1</h3><p>deep</p><h2>B</h2><p>back up</p><h4>B.x</h4><p>skip</p>";
    const { document } = await extractDocument(utf8(html), { filename: "guide.html" });
    expect(document.title).toBe("Guide");
    expect(document.blocks).toEqual([
      { text: "deep", headingPath: ["Guide", "A", "A.1"] },
      { text: "back up", headingPath: ["Guide", "B"] },
      { text: "skip", headingPath: ["Guide", "B", "B.x"] },
    ]);
  });

  it("keeps <pre> line breaks", async () => {
    const { document } = await extractDocument(utf8("<p>Dose table:</p><pre>Age  Dose\n5    10 mg</pre>"), {
      filename: "a.html",
    });
    expect(document.blocks[0]!.text).toBe("Dose table:\n\nAge Dose\n5 10 mg");
  });
});

describe("Markdown", () => {
  it("strips markup but keeps text, code and table cells, under ATX and setext headings", async () => {
    const { bytes, name } = edgeCases.markdown;
    const { format, document } = await extractDocument(bytes, { filename: name });
    expect(format).toBe("markdown");
    expect(document).toEqual({
      title: "Insulin storage",
      blocks: [
        {
          text: "Keep unopened pens in the fridge (2–8 °C). See the leaflet\nor https://example.org/faq.",
          headingPath: ["Insulin storage"],
        },
        {
          text: "Room temperature for up to 28 days\nNever freeze; discard if frozen",
          headingPath: ["Insulin storage", "Opened pens"],
        },
        {
          text:
            "1. Look at the liquid\n2. Check the expiry date\n\n# not a heading\ninsulin --check *pen*\n\n" +
            "Type | Days after opening\nRapid | 28\nLong-acting | 42\n\n" +
            "Quote with inline code and snake_case_name.\n\nWritten by the pharmacy team.",
          headingPath: ["Insulin storage", "Opened pens", "Checking a pen"],
        },
      ],
    });
    expect(JSON.stringify(document)).not.toMatch(/LEAK|tags:|pen\.png|Pen diagram|example\.org\/leaflet/);
  });
});

describe("DOCX", () => {
  const body =
    wordParagraph("Ward infection guide", "Title") +
    wordParagraph("For all staff &amp; volunteers.") +
    wordParagraph("Masks", "Heading1") +
    wordParagraph("Wear a mask near coughing patients.") +
    wordParagraph("Fitting", "Heading2") +
    wordParagraph("Check the seal every time.") +
    wordTable([
      ["Mask", "Use"],
      ["FFP3", "Aerosol procedures"],
    ]) +
    wordParagraph("Gloves", "Heading1") +
    wordParagraph("Change   gloves\u00a0between patients.");

  it("gives heading paths from Word heading styles, the title from the Title style, and table cells", async () => {
    const { format, mimeType, document } = await extractDocument(docx(body), { filename: "guide.docx" });
    expect(format).toBe("docx");
    expect(mimeType).toBe("application/vnd.openxmlformats-officedocument.wordprocessingml.document");
    expect(document).toEqual({
      title: "Ward infection guide",
      blocks: [
        { text: "For all staff & volunteers.", headingPath: ["Ward infection guide"] },
        { text: "Wear a mask near coughing patients.", headingPath: ["Masks"] },
        {
          text: "Check the seal every time.\n\nMask | Use\nFFP3 | Aerosol procedures",
          headingPath: ["Masks", "Fitting"],
        },
        { text: "Change gloves between patients.", headingPath: ["Gloves"] },
      ],
    });
  });

  it("is read as DOCX whatever it is called", async () => {
    const { format } = await extractDocument(docx(body), { filename: "guide.pdf", contentType: "application/pdf" });
    expect(format).toBe("docx");
  });
});

describe("generated PDF", () => {
  it("keeps page numbers across an empty page, joins split words, drops a running header, reads the title", async () => {
    const bytes = pdf(
      [
        pdfTextPage(["Clinic handbook", "An inter-", "national study of hand-", "Washing and COVID-", "19."]),
        "0 0 1 rg 100 100 200 200 re f",
        pdfTextPage(["Clinic handbook", "Third page."]),
        pdfTextPage(["Clinic handbook", "Fourth page."]),
      ],
      "Hand hygiene study",
    );
    const { document } = await extractDocument(bytes, {});
    expect(document).toEqual({
      title: "Hand hygiene study",
      blocks: [
        { text: "An international study of hand-\nWashing and COVID-\n19.", page: 1, headingPath: [] },
        { text: "Third page.", page: 3, headingPath: [] },
        { text: "Fourth page.", page: 4, headingPath: [] },
      ],
    });
  });
});

describe("document titles", () => {
  const wordBody =
    wordParagraph("Ward infection guide", "Title") + wordParagraph("Wear a mask near coughing patients.");
  const wordFile = (titleXml: string) =>
    deflatedZip({ ...docxParts(wordBody), "docProps/core.xml": wordCoreProperties(titleXml) });

  it("the real CDC PDF has no Title; once a PDF editor sets one (an incremental update), it is read", async () => {
    expect((await extractDocument(samples.cdcPdf.bytes)).document.title).toBeUndefined();
    const titled = withPdfInfo(
      samples.cdcPdf.bytes,
      `/Title ${pdfTextString("Guide to Infection Prevention for Outpatient Settings – CDC")} /Producer (PDFium)`,
    );
    const { document } = await extractDocument(titled);
    expect(document.title).toBe("Guide to Infection Prevention for Outpatient Settings – CDC");
    expect(document.blocks).toHaveLength(10);
  });

  it("a DOCX's title is its core property dc:title (deflated, as Word saves it), before the Title style", async () => {
    const { document } = await extractDocument(await wordFile("Mask policy &amp; fitting"), { filename: "m.docx" });
    expect(document.title).toBe("Mask policy & fitting");
    expect(document.blocks[0]).toEqual({
      text: "Wear a mask near coughing patients.",
      headingPath: ["Ward infection guide"],
    });
  });

  it("an empty dc:title (Word's default) falls back to the Title-styled paragraph", async () => {
    const { document } = await extractDocument(await wordFile(""), { filename: "m.docx" });
    expect(document.title).toBe("Ward infection guide");
  });

  it.each([
    ["a file name", "Microsoft Word - ward-guide.docx"],
    ["Untitled", "Untitled"],
    ["Word's default name", "Document1"],
    ["blank", "  "],
  ])("a placeholder title (%s) counts as none", async (_, title) => {
    const { document } = await extractDocument(pdf([pdfTextPage(["Some text."])], title));
    expect(document.title).toBeUndefined();
  });

  it("keeps a long title to 500 characters", async () => {
    const { document } = await extractDocument(pdf([pdfTextPage(["Some text."])], "A".repeat(800)));
    expect(document.title).toBe("A".repeat(500));
  });

  // Postgres refuses U+0000 in text: nothing taken from a file may carry one into a title, heading or chunk.
  it.each([
    [
      "PDF Title and text",
      async () => withPdfInfo(pdf([pdfTextPage(["Dose\\000 table"])]), `/Title ${pdfTextString("Dose\u0000guide")}`),
    ],
    ["DOCX core title", async () => wordFile("Dose&#0;guide")],
    ["HTML title and heading", async () => utf8("<title>Dose&#0;guide</title><h2>A&#0;B</h2><p>Dose&#0;table</p>")],
    ["Markdown heading", async () => utf8("# Dose&#0;guide\n\n## A&#x0;B\n\nDose&#0;table")],
  ])("no NUL survives extraction: %s", async (_, file) => {
    const { document } = await extractDocument(await file(), { filename: "f" });
    expect(document.title).toMatch(/^Dose\W?guide$/);
    expect(JSON.stringify(document)).not.toContain("\\u0000");
  });
});

describe("plain text", () => {
  it.each([
    [
      "UTF-8 with a BOM and CRLF",
      new Uint8Array([0xef, 0xbb, 0xbf, ...utf8("Line one\r\nLine\u00a0two\r\n\r\n\r\nNext")]),
    ],
    ["UTF-16 LE", utf16("Line one\r\nLine\u00a0two\r\n\r\n\r\nNext", "le")],
    ["UTF-16 BE", utf16("Line one\r\nLine\u00a0two\r\n\r\n\r\nNext", "be")],
  ])("%s is decoded and normalised", async (_, bytes) => {
    const result = await extractDocument(bytes, { filename: "notes.txt" });
    expect(result).toEqual({
      format: "text",
      mimeType: "text/plain",
      document: { blocks: [{ text: "Line one\nLine two\n\nNext", headingPath: [] }] },
    });
  });
});

describe("bad files", () => {
  it("a corrupt (truncated) PDF is a 422 saying it could not be read", async () => {
    const error = await failure(extractDocument(samples.cdcPdf.bytes.slice(0, 3000), { filename: "guide.pdf" }));
    expect(error.status).toBe(422);
    expect(error.message).toBe(
      "The PDF could not be read: Invalid PDF structure. Check that it opens, then upload it again.",
    );
  });

  it("a PDF without a text layer is a 422 saying so", async () => {
    const scan = pdf(["0 0 1 rg 100 100 200 200 re f", "0.5 g 50 50 500 700 re f"]);
    const error = await failure(extractDocument(scan, { filename: "scan.pdf" }));
    expect(error.status).toBe(422);
    expect(error.message).toContain("no text layer");
  });

  it("an empty file is a 422 on the file field", async () => {
    const error = await failure(extractDocument(new Uint8Array(0), { filename: "empty.pdf" }));
    expect(error.status).toBe(422);
    expect(error.errors).toEqual([{ field: "file", message: "is empty" }]);
  });

  it("a ZIP renamed .pdf is a 415", async () => {
    const error = await failure(extractDocument(zip({ "a.txt": "hello" }), { filename: "report.pdf" }));
    expect(error.status).toBe(415);
    expect(error.message).toMatch(/^The file "report.pdf" looks like a ZIP archive/);
  });

  it("a PNG renamed .txt is a 415", async () => {
    const error = await failure(extractDocument(pngBytes(), { filename: "notes.txt", contentType: "text/plain" }));
    expect(error.status).toBe(415);
    expect(error.message).toMatch(/^The file "notes.txt" looks like a PNG image/);
  });

  it("a DOCX with broken XML is a 422 saying it could not be read", async () => {
    const broken = zip({ "word/document.xml": "<w:document><w:body><w:p>" });
    const error = await failure(extractDocument(broken, { filename: "broken.docx" }));
    expect(error.status).toBe(422);
    expect(error.message).toMatch(/^The DOCX could not be read: .*xml.*\. Check that it opens in Word\.$/i);
  });

  it.each([
    ["HTML with nothing but chrome", utf8("<html><body><nav>Home</nav><script>x()</script></body></html>"), "a.html"],
    ["whitespace", utf8(" \n\t\u00a0\u200b\n"), "a.txt"],
    ["Markdown with only an image", utf8("# Figure\n\n![x](y.png)\n"), "a.md"],
  ])("%s is a 422: no extractable text", async (_, bytes, filename) => {
    const error = await failure(extractDocument(bytes, { filename }));
    expect(error.status).toBe(422);
    expect(error.message).toContain("no extractable text");
  });
});
