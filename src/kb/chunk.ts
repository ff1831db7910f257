import type { TextBlock } from "./extract/port.ts";

export interface Chunk {
  index: number;
  text: string;
  /** Offsets into the document's full text (its blocks joined by blank lines). */
  charStart: number;
  charEnd: number;
  page?: number;
  headingPath: string[];
}

interface ChunkOptions {
  /** Target size in characters; a chunk exceeds it only when a single sentence does. */
  size: number;
  /** Characters of the previous chunk repeated at the start of the next one (whole sentences). */
  overlap: number;
}

export const BLOCK_SEPARATOR = "\n\n";

interface Sentence {
  start: number;
  end: number;
}

// Sentence ends: . ! ? (and closing quotes/brackets) followed by space, or a line break.
const SENTENCE_END = /[.!?…]+["')\]]*\s+|\n+/g;

/** The sentences of a text as offsets (shifted by `offset`), trailing whitespace included. */
export function sentencesOf(text: string, offset: number): Sentence[] {
  const sentences: Sentence[] = [];
  let start = 0;
  for (const match of text.matchAll(SENTENCE_END)) {
    const end = (match.index ?? 0) + match[0].length;
    if (text.slice(start, end).trim()) sentences.push({ start: offset + start, end: offset + end });
    start = end;
  }
  if (text.slice(start).trim()) sentences.push({ start: offset + start, end: offset + text.length });
  return sentences;
}

/** Splits an over-long sentence at word boundaries so no piece exceeds the size. */
function splitLong(sentence: Sentence, full: string, size: number): Sentence[] {
  const pieces: Sentence[] = [];
  let start = sentence.start;
  while (sentence.end - start > size) {
    const window = full.slice(start, start + size);
    const cut = window.lastIndexOf(" ");
    const end = start + (cut > size / 2 ? cut + 1 : size);
    pieces.push({ start, end });
    start = end;
  }
  pieces.push({ start, end: sentence.end });
  return pieces;
}

/**
 * Splits blocks into chunks of whole sentences, never across a block (a page or a heading section),
 * with about `overlap` characters of trailing sentences repeated at the start of the next chunk.
 */
export function chunkDocument(blocks: TextBlock[], options: ChunkOptions): Chunk[] {
  const full = blocks.map((b) => b.text).join(BLOCK_SEPARATOR);
  const chunks: Chunk[] = [];
  let offset = 0;
  for (const block of blocks) {
    const sentences = sentencesOf(block.text, offset).flatMap((s) => splitLong(s, full, options.size));
    let first = 0;
    while (first < sentences.length) {
      let last = first;
      while (
        last + 1 < sentences.length &&
        (sentences[last + 1] as Sentence).end - (sentences[first] as Sentence).start <= options.size
      ) {
        last++;
      }
      const start = (sentences[first] as Sentence).start;
      const end = (sentences[last] as Sentence).end;
      chunks.push({
        index: chunks.length,
        text: full.slice(start, end).trim(),
        charStart: start,
        charEnd: end,
        ...(block.page !== undefined ? { page: block.page } : {}),
        headingPath: block.headingPath,
      });
      if (last + 1 >= sentences.length) break;
      // Step back over whole sentences worth at most `overlap` characters, always moving forward.
      let next = last + 1;
      while (next - 1 > first && end - (sentences[next - 1] as Sentence).start <= options.overlap) next--;
      first = next;
    }
    offset += block.text.length + BLOCK_SEPARATOR.length;
  }
  return chunks;
}

/** A rough token count (about 4 characters per token for English), for budgets and stats. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4);
