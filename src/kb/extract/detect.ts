import { ApiError, fieldError } from "../../errors.ts";
import { decodeText } from "./encoding.ts";
import type { DocumentFormat } from "./port.ts";
import { zipEntryNames } from "./zip.ts";

export interface FormatHints {
  filename?: string;
  contentType?: string;
}

export interface DetectedFormat {
  format: DocumentFormat;
  /** The type to store the upload under, whatever the client claimed. */
  mimeType: string;
}

const MIME_TYPES: Record<DocumentFormat, string> = {
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  html: "text/html",
  markdown: "text/markdown",
  text: "text/plain",
};

export const ACCEPTED_FORMATS = "PDF (with a text layer), DOCX, HTML, Markdown or plain text (UTF-8 or UTF-16)";

// Signatures of files people upload by mistake, to say what the file is rather than just "unsupported".
// ANY matches any byte (e.g. a length field). Signatures that plain text could start with are left to the UTF-8 check.
const ANY = -1;
const BINARY_SIGNATURES: { bytes: number[]; what: string }[] = [
  { bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], what: "a PNG image" },
  { bytes: [0xff, 0xd8, 0xff], what: "a JPEG image" },
  { bytes: ascii("GIF8"), what: "a GIF image" },
  { bytes: [...ascii("RIFF"), ANY, ANY, ANY, ANY, ...ascii("WEBP")], what: "a WebP image" },
  { bytes: [...ascii("RIFF"), ANY, ANY, ANY, ANY, ...ascii("WAVE")], what: "a WAV recording" },
  { bytes: [0x49, 0x49, 0x2a, 0x00], what: "a TIFF image (OCR it to PDF first)" },
  { bytes: [0x4d, 0x4d, 0x00, 0x2a], what: "a TIFF image (OCR it to PDF first)" },
  { bytes: [ANY, ANY, ANY, ANY, ...ascii("ftyp")], what: "an MP4/MOV media file" },
  { bytes: ascii("OggS"), what: "an Ogg media file" },
  { bytes: ascii("fLaC"), what: "a FLAC recording" },
  { bytes: [0x1f, 0x8b], what: "a gzip archive" },
  { bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], what: "a 7-Zip archive" },
  { bytes: ascii("Rar!"), what: "a RAR archive" },
  { bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: "an xz archive" },
  { bytes: [0x28, 0xb5, 0x2f, 0xfd], what: "a zstd archive" },
  { bytes: [0x7f, 0x45, 0x4c, 0x46], what: "an executable (ELF)" },
  { bytes: [0x00, 0x61, 0x73, 0x6d], what: "a WebAssembly module" },
  { bytes: ascii("SQLite format 3"), what: "an SQLite database" },
  { bytes: [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], what: "a legacy Office file (.doc/.xls/.ppt)" },
  // Text formats whose markup would be indexed as if it were prose.
  { bytes: ascii("{\\rtf"), what: "an RTF document" },
  { bytes: ascii("%!PS"), what: "a PostScript file" },
];

const STRONG_HTML = /^(?:\s|<!--[\s\S]*?-->)*<(?:!doctype\s+html|html|head|body)[\s>]/i;
const BLOCK_TAGS = /<(?:p|div|h[1-6]|ul|ol|li|table|tr|td|article|section|main|blockquote|pre|br)\b[^>]*>/gi;
const MARKDOWN_SIGNS = [
  /^ {0,3}#{1,6}[ \t]+\S/m, // ATX heading
  /^ {0,3}(?:```|~~~)/m, // code fence
  /\[[^\]\n]+\]\([^)\s]+[^)]*\)/, // inline link
  /^[^\n]+\n {0,3}(?:=+|-+)[ \t]*$/m, // setext heading
  /^---\r?\n[\s\S]*?\n---\r?\n/, // front matter
];
const LIST_ITEM = /^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S/gm;

/**
 * The real format of an upload, from its bytes: the name and content type only choose between text dialects.
 * Throws 415 for anything else (saying what the file looks like), 422 for an empty file.
 */
export function detectFormat(bytes: Uint8Array, hints: FormatHints = {}): DetectedFormat {
  const format = sniffFormat(bytes, hints);
  return { format, mimeType: MIME_TYPES[format] };
}

function sniffFormat(bytes: Uint8Array, hints: FormatHints): DocumentFormat {
  if (bytes.length === 0) throw fieldError("file", "is empty");
  // PDF readers accept the header anywhere in the first kilobyte.
  if (indexOf(bytes.subarray(0, 1024), ascii("%PDF-")) >= 0) return "pdf";
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04]) || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06])) {
    return zipFormat(bytes, hints);
  }
  const signature = BINARY_SIGNATURES.find((s) => startsWith(bytes, s.bytes));
  if (signature) throw refuse(signature.what, hints);
  const text = decodeText(bytes);
  if (text === undefined) {
    throw refuse(looksLikeText(bytes) ? "text in a legacy encoding (save it as UTF-8)" : "binary data", hints);
  }
  return textFormat(text, hints);
}

function zipFormat(bytes: Uint8Array, hints: FormatHints): DocumentFormat {
  const names = zipEntryNames(bytes);
  if (!names) {
    throw new ApiError(
      "VALIDATION_FAILED",
      `${subject(hints)} is a damaged or truncated ZIP archive (a DOCX is one); upload it again.`,
    );
  }
  if (names.includes("word/document.xml")) return "docx";
  const what = names.some((n) => n.startsWith("xl/"))
    ? "an Excel workbook (XLSX)"
    : names.some((n) => n.startsWith("ppt/"))
      ? "a PowerPoint presentation (PPTX)"
      : names.includes("content.xml")
        ? "an OpenDocument file (ODT/ODS/ODP)"
        : "a ZIP archive";
  throw refuse(what, hints);
}

function textFormat(text: string, hints: FormatHints): DocumentFormat {
  const head = text.slice(0, 4096);
  if (STRONG_HTML.test(head)) return "html";
  const name = hints.filename?.toLowerCase() ?? "";
  const type = hints.contentType?.toLowerCase() ?? "";
  if (/\.(?:md|markdown)$/.test(name) || type.startsWith("text/markdown")) return "markdown";
  const blockTags = head.match(BLOCK_TAGS)?.length ?? 0;
  const saysHtml = /\.html?$/.test(name) || type.startsWith("text/html");
  const looksMarkdown = MARKDOWN_SIGNS.some((sign) => sign.test(head)) || (head.match(LIST_ITEM)?.length ?? 0) >= 2;
  if (blockTags >= 2 || (blockTags >= 1 && saysHtml)) return looksMarkdown && !saysHtml ? "markdown" : "html";
  return looksMarkdown ? "markdown" : "text";
}

// Mostly printable ASCII and no NUL: text saved as Windows-1252, Latin-1 or similar, not a binary format.
function looksLikeText(bytes: Uint8Array): boolean {
  const head = bytes.subarray(0, 4096);
  if (head.includes(0)) return false;
  const plain = head.filter((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d).length;
  return plain / head.length >= 0.8;
}

function refuse(what: string, hints: FormatHints): ApiError {
  return new ApiError(
    "UNSUPPORTED_MEDIA_TYPE",
    `${subject(hints)} looks like ${what}, which cannot be ingested. Upload ${ACCEPTED_FORMATS}.`,
  );
}

const subject = (hints: FormatHints) => (hints.filename ? `The file "${hints.filename}"` : "The file");

function ascii(text: string): number[] {
  return [...text].map((c) => c.charCodeAt(0));
}

function startsWith(bytes: Uint8Array, signature: number[]): boolean {
  return bytes.length >= signature.length && signature.every((b, i) => b === ANY || bytes[i] === b);
}

function indexOf(bytes: Uint8Array, needle: number[]): number {
  for (let at = 0; at + needle.length <= bytes.length; at++) {
    if (needle.every((b, i) => bytes[at + i] === b)) return at;
  }
  return -1;
}
