import { analyze } from "../kb/terms.ts";

// Words that shape a question or a request without naming its subject (the index's stopwords are already gone).
const QUESTION_WORDS = new Set(
  analyze(
    [
      "what which who whom whose when where why how whether",
      "do does did doing done can could should would may might must shall am is are was were been being have has had having",
      "i me my mine we our ours you your yours he him his she her hers its them this those here",
      "please tell explain describe know many much often more most some any each every other",
      "about from than rather also just only very so",
    ].join(" "),
  ),
);

/** The index terms of a text (stemmed, as keyword search sees them) less the words that only shape a question. */
export const contentTerms = (text: string): string[] => analyze(text).filter((term) => !QUESTION_WORDS.has(term));

/**
 * What a question is about: its distinct content terms, each weighing 1 + its idf among the sources (BM25's,
 * with the sources as the collection). Every term counts; a rarer one counts more; one that no source
 * contains counts the most, for nothing retrieved speaks of it.
 */
export interface Focus {
  weights: Map<string, number>;
  total: number;
}

export function focusOf(question: string, sourceTerms: ReadonlySet<string>[]): Focus {
  const n = sourceTerms.length;
  const weights = new Map<string, number>();
  let total = 0;
  for (const term of contentTerms(question)) {
    if (weights.has(term)) continue;
    const df = sourceTerms.filter((terms) => terms.has(term)).length;
    const weight = 1 + Math.log(1 + (n - df + 0.5) / (df + 0.5));
    weights.set(term, weight);
    total += weight;
  }
  return { weights, total };
}

/** The share of the focus's weight, 0 to 1, that a text with these terms holds (summed in question order). */
export function weightShare(focus: Focus, terms: ReadonlySet<string>): number {
  let held = 0;
  for (const [term, weight] of focus.weights) if (terms.has(term)) held += weight;
  return focus.total === 0 ? 0 : held / focus.total;
}

/**
 * Whether a text with these terms carries the question: it holds more than half of the question's terms
 * ("How is norovirus treated?" is not carried by a sentence naming norovirus alone) and more than half of
 * their weight ("Which vaccines do children need?" is not carried by one about vaccinating staff).
 */
export function carries(focus: Focus, terms: ReadonlySet<string>): boolean {
  const held = [...focus.weights.keys()].filter((term) => terms.has(term)).length;
  return held * 2 > focus.weights.size && weightShare(focus, terms) * 2 > 1;
}
