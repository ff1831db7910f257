import { analyze } from "../kb/terms.ts";

export const SNIPPET_CHARS = 300;
// How far back a window may reach for the start of the sentence holding its first match.
const SENTENCE_LOOKBACK = 80;
const ELLIPSIS = "…";

/**
 * The part of a chunk that best shows why it matched: the window of at most `maxChars` characters
 * (ellipses included) holding the most distinct query terms, widened back to its sentence start when
 * that is close. Short chunks come back whole; without a match, the chunk's beginning.
 */
export function snippetFor(text: string, queryTerms: ReadonlySet<string>, maxChars = SNIPPET_CHARS): string {
  const clean = text.trim();
  if (clean.length <= maxChars) return clean;
  const budget = maxChars - 2 * ELLIPSIS.length;
  const hits = [...clean.matchAll(/[\p{L}\p{N}]+/gu)].flatMap((m) => {
    const term = analyze(m[0])[0];
    return term && queryTerms.has(term) ? [{ at: m.index, term }] : [];
  });
  let best = { at: 0, distinct: 0, total: 0 };
  for (const [i, first] of hits.entries()) {
    const inside = hits.slice(i).filter((h) => h.at < first.at + budget);
    const distinct = new Set(inside.map((h) => h.term)).size;
    if (distinct > best.distinct || (distinct === best.distinct && inside.length > best.total)) {
      best = { at: first.at, distinct, total: inside.length };
    }
  }
  const start = best.distinct ? windowStart(clean, best.at) : 0;
  return cut(clean, start, budget);
}

/** The start of the match's sentence if it is near, the text's start if that is near, else the match. */
function windowStart(text: string, at: number): number {
  const from = Math.max(0, at - SENTENCE_LOOKBACK);
  let sentence = -1;
  for (const end of text.slice(from, at).matchAll(/[.!?]\s+/g)) sentence = end.index + end[0].length;
  if (sentence >= 0) return from + sentence;
  return from === 0 ? 0 : at;
}

/** `budget` characters from `start`, ending on a word boundary, with ellipses where text was cut. */
function cut(text: string, start: number, budget: number): string {
  let end = Math.min(text.length, start + budget);
  if (end < text.length) {
    const space = text.lastIndexOf(" ", end);
    if (space > start) end = space;
  }
  const body = text.slice(start, end).trim();
  return `${start > 0 ? ELLIPSIS : ""}${body}${end < text.length ? ELLIPSIS : ""}`;
}
