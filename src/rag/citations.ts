import { analyze } from "../kb/terms.ts";
import type { SourcePassage } from "./prompt.ts";
import { snippetFor } from "./snippet.ts";

export interface Citation {
  index: number;
  document_id: string;
  external_id: string | null;
  title: string;
  chunk_id: string;
  page: number | null;
  /** Exact text of the cited chunk that best supports the statements citing it. */
  snippet: string;
  score: number;
}

// [1], [2,3], [2, 3]: a marker is digits and commas inside brackets.
const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
// An unfinished marker at the end of a delta: held back until the next delta completes or refutes it.
const OPEN_MARKER = /\[[\d,\s]{0,16}$/;

/**
 * Rewrites streamed text so that only markers naming a real source survive. Markers can be split
 * across deltas, so a possible marker start is held back until it is complete.
 */
export class CitationFilter {
  /** Source numbers cited, in order of first appearance. */
  readonly cited: number[] = [];
  /** Marker numbers that named no source and were dropped. */
  dropped = 0;
  private pending = "";
  private readonly sourceCount: number;

  constructor(sourceCount: number) {
    this.sourceCount = sourceCount;
  }

  push(delta: string): string {
    const text = this.pending + delta;
    const open = OPEN_MARKER.exec(text);
    const ready = open ? text.slice(0, open.index) : text;
    this.pending = open ? text.slice(open.index) : "";
    return this.rewrite(ready);
  }

  /** What is still held back, at the end of the stream. */
  flush(): string {
    const rest = this.rewrite(this.pending);
    this.pending = "";
    return rest;
  }

  private rewrite(text: string): string {
    return text.replace(MARKER, (_marker, list: string) => {
      const numbers = list.split(",").map((n) => Number(n.trim()));
      const valid = numbers.filter((n) => n >= 1 && n <= this.sourceCount);
      this.dropped += numbers.length - valid.length;
      for (const n of valid) if (!this.cited.includes(n)) this.cited.push(n);
      return valid.length ? `[${valid.join(", ")}]` : "";
    });
  }
}

/** The answer's sentences that cite source n. */
function statementsCiting(answer: string, n: number): string[] {
  const sentences = answer.split(/(?<=[.!?])\s+|\n+/);
  return sentences.filter((s) => [...s.matchAll(MARKER)].some((m) => m[1]?.split(",").some((x) => Number(x) === n)));
}

/**
 * Citations for the sources an answer cited, in order of first citation. The snippet is the part of
 * the chunk sharing the most words with the statements that cite it: verbatim, so it can be checked.
 */
export function citationsFor(answer: string, cited: number[], sources: SourcePassage[]): Citation[] {
  return cited.flatMap((n) => {
    const source = sources.find((s) => s.index === n);
    if (!source) return [];
    const claimTerms = new Set(analyze(statementsCiting(answer, n).join(" ")));
    return [
      {
        index: n,
        document_id: source.documentId,
        external_id: source.externalId,
        title: source.title,
        chunk_id: source.chunkId,
        page: source.page,
        snippet: snippetFor(source.text, claimTerms).replace(/^…|…$/g, ""),
        score: source.score,
      },
    ];
  });
}
