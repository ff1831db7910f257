/** A run of text from one place in the source: a page of a PDF, or a section under a heading path. */
export interface TextBlock {
  text: string;
  page?: number;
  headingPath: string[];
}

export interface ExtractedDocument {
  /** Title found in the document (PDF metadata, first h1, <title>), if any. */
  title?: string;
  blocks: TextBlock[];
}

export type DocumentFormat = "pdf" | "docx" | "html" | "markdown" | "text";
