import { extractTextItems, getDocumentProxy, getMeta } from "unpdf";
import { ApiError } from "../../errors.ts";
import { dropRunningLines, pageLines, pageText } from "./pdf-layout.ts";
import type { ExtractedDocument } from "./port.ts";

// PDF.js names its errors about the file itself; anything else (a bug, memory) may be worth a retry.
const FILE_ERRORS = new Set(["InvalidPDFException", "FormatError", "UnknownErrorException", "MissingPDFException"]);

/**
 * Text of a PDF's text layer, one block per page (numbered from 1 in file order, not the printed labels).
 * A damaged or encrypted PDF, or one without any text, is a 422: the file is the right type but unusable as it is.
 */
export async function extractPdf(bytes: Uint8Array): Promise<ExtractedDocument> {
  // PDF.js takes ownership of (detaches) the buffer it is given: hand it a copy.
  // Verbosity 0: PDF.js reports recoverable damage ("Indexing all PDF objects") on the console otherwise.
  const pdf = await getDocumentProxy(bytes.slice(), { verbosity: 0 }).catch((error: unknown) => {
    throw fileError(error);
  });
  try {
    const { items } = await extractTextItems(pdf).catch((error: unknown) => {
      throw fileError(error);
    });
    const pages = dropRunningLines(items.map(pageLines)).map(pageText);
    if (pages.every((text) => !/\S/.test(text))) {
      throw new ApiError(
        "VALIDATION_FAILED",
        "The PDF has no text layer (scanned images?); run OCR on it first or upload the source document.",
      );
    }
    const blocks = pages.map((text, i) => ({ text, page: i + 1, headingPath: [] }));
    const title = await pdfTitle(pdf);
    return title ? { title, blocks } : { blocks };
  } finally {
    await pdf.loadingTask.destroy();
  }
}

async function pdfTitle(pdf: Parameters<typeof getMeta>[0]): Promise<string | undefined> {
  const { info } = await getMeta(pdf).catch(() => ({ info: {} as Record<string, unknown> }));
  const title = info.Title;
  return typeof title === "string" && title.trim() ? title.trim() : undefined;
}

function fileError(error: unknown): unknown {
  const name = error instanceof Error ? error.name : "";
  if (name === "PasswordException") {
    return new ApiError("VALIDATION_FAILED", "The PDF is password-protected; upload a copy without a password.", {
      cause: error,
    });
  }
  if (!FILE_ERRORS.has(name)) return error;
  const reason = (error instanceof Error ? error.message : String(error)).replace(/\.$/, "");
  return new ApiError(
    "VALIDATION_FAILED",
    `The PDF could not be read: ${reason}. Check that it opens, then upload it again.`,
    {
      cause: error,
    },
  );
}
