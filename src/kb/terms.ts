import { stemmer } from "stemmer";

// The analyzer of the keyword index, as in Lucene's English analyzer that BM25 baselines use:
// lower-case, fold accents, split on non-alphanumerics, drop Lucene's 33 stopwords, Porter-stem.
const STOPWORDS = new Set(
  "a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with".split(
    " ",
  ),
);
const MAX_TERM_LENGTH = 64;

/** The index terms of a text, in order (repeats kept: they are term frequencies). */
export function analyze(text: string): string[] {
  const folded = text
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase();
  const terms: string[] = [];
  for (const token of folded.split(/[^\p{L}\p{N}]+/u)) {
    if (!token || token.length > MAX_TERM_LENGTH || STOPWORDS.has(token)) continue;
    terms.push(/^\p{L}+$/u.test(token) ? stemmer(token) : token);
  }
  return terms;
}

/** Term frequencies of a text: the postings of one chunk. */
export function termFrequencies(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const term of analyze(text)) counts.set(term, (counts.get(term) ?? 0) + 1);
  return counts;
}
