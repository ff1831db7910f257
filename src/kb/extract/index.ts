import { ApiError } from "../../errors.ts";
import { type DetectedFormat, detectFormat, type FormatHints } from "./detect.ts";
import { extractDocx } from "./docx.ts";
import { decodeText } from "./encoding.ts";
import { extractHtml } from "./html.ts";
import { extractMarkdown } from "./markdown.ts";
import { normaliseLine, normaliseText } from "./normalise.ts";
import { extractPdf } from "./pdf.ts";
import type { DocumentFormat, ExtractedDocument } from "./port.ts";

export { ACCEPTED_FORMATS, type DetectedFormat, detectFormat, type FormatHints } from "./detect.ts";

const extractors: Record<DocumentFormat, (bytes: Uint8Array) => Promise<ExtractedDocument> | ExtractedDocument> = {
  pdf: extractPdf,
  docx: extractDocx,
  html: (bytes) => extractHtml(text(bytes)),
  markdown: (bytes) => extractMarkdown(text(bytes)),
  text: (bytes) => ({ blocks: [{ text: text(bytes), headingPath: [] }] }),
};

/**
 * Detects the real format of an upload and extracts its text as normalised blocks.
 * Every problem with the file itself is thrown as a 4xx ApiError (415 wrong type, 422 unreadable or no text):
 * those are permanent, so the ingestion queue must not retry them. Anything else is unexpected.
 */
export async function extractDocument(
  bytes: Uint8Array,
  hints: FormatHints = {},
): Promise<DetectedFormat & { document: ExtractedDocument }> {
  const { format, mimeType } = detectFormat(bytes, hints);
  const extracted = await extractors[format](bytes);
  const blocks = extracted.blocks
    .map((block) => ({ ...block, text: normaliseText(block.text, { dehyphenate: format === "pdf" }) }))
    .filter((block) => block.text !== "");
  if (blocks.length === 0) {
    throw new ApiError(
      "VALIDATION_FAILED",
      "The document has no extractable text: nothing is left once markup, images and whitespace are removed.",
    );
  }
  const title = documentTitle(extracted.title);
  return { format, mimeType, document: title ? { title, blocks } : { blocks } };
}

const MAX_TITLE_LENGTH = 500; // as long as a title an admin may give
// Titles tools fill in when the author gave none: a file name, "Untitled", "Document1".
const PLACEHOLDER_TITLE =
  /^(?:untitled(?: document)?|document ?\d*|title|[^ ]+\.(?:pdf|docx?|html?|md|markdown|txt))$/i;

/** The document's own title on one line, or undefined when it only says what a tool put there. */
function documentTitle(raw: string | undefined): string | undefined {
  // normaliseLine turns control characters (a NUL in a PDF's Title) into spaces.
  const title = normaliseLine(raw ?? "").replace(/^Microsoft Word - /i, "");
  if (!title || PLACEHOLDER_TITLE.test(title)) return undefined;
  return [...title].slice(0, MAX_TITLE_LENGTH).join("").trim();
}

// detectFormat has accepted these bytes as text, so decoding cannot fail here.
const text = (bytes: Uint8Array) => decodeText(bytes) ?? "";
