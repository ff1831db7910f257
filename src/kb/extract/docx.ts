import { ApiError } from "../../errors.ts";
import { extractHtml } from "./html.ts";
import type { ExtractedDocument } from "./port.ts";

// Word's Title style (by name, or by id when styles.xml is absent) is the top heading; mammoth maps Heading 1-6.
const STYLE_MAP = ["p[style-name='Title'] => h1:fresh", "p.Title => h1:fresh"];

/**
 * Text of a DOCX: mammoth turns Word's structure into HTML (headings from heading styles, lists, tables),
 * then the HTML extractor gives heading paths. Images are not read.
 */
export async function extractDocx(bytes: Uint8Array): Promise<ExtractedDocument> {
  // Loaded on the first DOCX only: it is large and most requests never need it.
  const { default: mammoth } = await import("mammoth");
  const arrayBuffer = bytes.slice().buffer;
  let html: string;
  try {
    // Wrangler bundles mammoth's browser build (reads arrayBuffer); the vitest pool loads its Node build
    // (reads buffer; JSZip takes an ArrayBuffer there too). One input serves both.
    const result = await mammoth.convertToHtml({ arrayBuffer, buffer: arrayBuffer } as { arrayBuffer: ArrayBuffer }, {
      styleMap: STYLE_MAP,
      convertImage: mammoth.images.imgElement(async () => ({ src: "" })),
    });
    html = result.value;
  } catch (error) {
    // The XML parser appends a position line that says nothing ("@#[line:undefined,...]").
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0]!.replace(/\s+/g, " ").trim();
    throw new ApiError("VALIDATION_FAILED", `The DOCX could not be read: ${reason}. Check that it opens in Word.`, {
      cause: error,
    });
  }
  return extractHtml(html);
}
