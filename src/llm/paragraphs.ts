import { sentencesOf } from "../kb/chunk.ts";
import { analyze } from "../kb/terms.ts";
import type { PromptSource } from "./port.ts";

/** A paragraph of a source, as its author grouped the sentences. */
export interface Paragraph {
  source: PromptSource;
  /** Its place among its source's paragraphs. */
  position: number;
  /** Whitespace collapsed: PDF line wraps and list layout are not words. */
  text: string;
  sentences: string[];
  /** The terms of its source's heading path: what every sentence under them is about. */
  heading: string[];
}

/** What an answer may quote: a short paragraph whole, or one sentence of a long one. */
export interface Passage {
  paragraph: Paragraph;
  text: string;
  /** Its own terms and its headings'. */
  terms: Set<string>;
  /** Whether it is its paragraph's end, where a list the paragraph announces begins. */
  endsParagraph: boolean;
}

// Blocks are joined by blank lines (src/kb/chunk.ts); so are the paragraphs and list items extractors keep.
const PARAGRAPH_BREAK = /\n[ \t]*\n/;
// A list item's bullet or number: "❑ ", "• ", "- ", "1. ", "a) ", "iv. ".
const LIST_ITEM = /^(?:[•❑▪◦●■□‣–*-]|(?:\d{1,2}|[a-z]|[ivx]{1,4})[.)])\s/u;

export function paragraphsOf(source: PromptSource): Paragraph[] {
  const heading = analyze((source.headingPath ?? []).join(" "));
  return source.text
    .split(PARAGRAPH_BREAK)
    .map((raw) => raw.replace(/\s+/g, " ").trim())
    .filter(Boolean)
    .map((text, position) => {
      const sentences = sentencesOf(text, 0).map(({ start, end }) => text.slice(start, end).trim());
      return { source, position, text, sentences, heading };
    });
}

/** A paragraph up to `wholeChars` long is one passage (quoted whole, list intro and all); a longer one, its sentences. */
export function passagesOf(paragraph: Paragraph, wholeChars: number): Passage[] {
  const passage = (text: string, endsParagraph: boolean): Passage => ({
    paragraph,
    text,
    terms: new Set([...analyze(text), ...paragraph.heading]),
    endsParagraph,
  });
  if (paragraph.text.length <= wholeChars) return [passage(paragraph.text, true)];
  return paragraph.sentences.map((sentence, i) => passage(sentence, i === paragraph.sentences.length - 1));
}

/**
 * The list a paragraph announces, in whole paragraphs up to `maxChars` in all (at least one): what follows
 * a paragraph ending in a colon ("…may include:"), or the items right after a paragraph that is neither an
 * item itself nor the tail of a sentence (a chunk can start mid-sentence).
 */
export function listAfter(paragraphs: Paragraph[], paragraph: Paragraph, maxChars: number): Paragraph[] {
  const after = paragraphs.filter((p) => p.source === paragraph.source && p.position > paragraph.position);
  const announced = paragraph.text.endsWith(":");
  const introduces = /^\p{Lu}/u.test(paragraph.text) && !LIST_ITEM.test(paragraph.text);
  if (!announced && !(introduces && LIST_ITEM.test(after[0]?.text ?? ""))) return [];
  const taken: Paragraph[] = [];
  let chars = 0;
  for (const next of after) {
    if (!announced && !LIST_ITEM.test(next.text)) break;
    chars += next.text.length;
    if (taken.length > 0 && chars > maxChars) break;
    taken.push(next);
  }
  return taken;
}
