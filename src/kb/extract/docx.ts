import { decodeXML } from "entities";
import { ApiError } from "../../errors.ts";
import { extractHtml } from "./html.ts";
import type { ExtractedDocument } from "./port.ts";
import { readZipEntry } from "./zip.ts";

const CORE_PROPERTIES = "docProps/core.xml";
const CORE_PROPERTIES_MAX_BYTES = 256 * 1024; // a few hundred bytes in practice
// dc:title, whatever prefix the file gives the Dublin Core namespace; core.xml has no other "title".
const CORE_TITLE = /<(?:[\w.-]+:)?title\b[^>]*>([\s\S]*?)<\/(?:[\w.-]+:)?title\s*>/;

// Word's Title style (by name, or by id when styles.xml is absent) is the top heading; mammoth maps Heading 1-6.
const STYLE_MAP = ["p[style-name='Title'] => h1:fresh", "p.Title => h1:fresh"];

/**
 * Text of a DOCX: mammoth turns Word's structure into HTML (headings from heading styles, lists, tables),
 * then the HTML extractor gives heading paths. Images are not read. The title is the one in the file's
 * properties (File > Info in Word), else the first Title-styled or top-level heading.
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
  const extracted = await extractHtml(html);
  const title = await coreTitle(bytes);
  return title ? { ...extracted, title } : extracted;
}

/** dc:title of the document's core properties; Word writes an empty one when none was set. */
async function coreTitle(bytes: Uint8Array): Promise<string | undefined> {
  const xml = await readZipEntry(bytes, CORE_PROPERTIES, CORE_PROPERTIES_MAX_BYTES);
  const match = xml && CORE_TITLE.exec(new TextDecoder().decode(xml));
  const title = match ? decodeXML(match[1]!).trim() : "";
  return title || undefined;
}
