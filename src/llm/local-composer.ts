import { estimateTokens } from "../kb/chunk.ts";
import { analyze } from "../kb/terms.ts";
import { listAfter, type Paragraph, type Passage, paragraphsOf, passagesOf } from "./paragraphs.ts";
import type { ChatChunk, ChatModel, ChatRequest } from "./port.ts";
import { carries, contentTerms, type Focus, focusOf, weightShare } from "./question-focus.ts";

/** The whole answer when nothing found answers the question (no markers: nothing is cited). */
export const NOT_IN_KNOWLEDGE_BASE = "The knowledge base does not cover this question.";

const ANSWER_PREFIX = "From the knowledge base:";
const MAX_QUOTES = 2;
// A longer paragraph is weighed and quoted sentence by sentence; a list is quoted up to this length.
const WHOLE_PARAGRAPH_CHARS = 400;
const LIST_CHARS = 600;

/** What an answer may quote: a passage with the list it announces, judged as a whole. */
interface Quote {
  text: string;
  index: number;
  /** Its terms and its headings'. */
  terms: Set<string>;
  /** Share of the focus's weight it holds. */
  share: number;
  /** How closely its own section heading states the question (Jaccard of their terms); 0 without one. */
  heading: number;
}

/**
 * The answer provider used without an OpenAI key. It quotes verbatim (whitespace collapsed) the passages
 * that carry the question's focus (question-focus.ts): a short paragraph whole or a sentence of a long
 * one, with the list it announces; the best one, and one more only if it is as good, each followed by
 * its source marker. When no passage carries the focus, it answers that the knowledge base does not
 * cover the question, citing nothing.
 */
export function localComposer(): ChatModel {
  return { provider: "local", model: "local-extractive-v1", stream: composeStream };
}

async function* composeStream(request: ChatRequest): AsyncGenerator<ChatChunk> {
  const answer = composeAnswer(request);
  // Word by word, so clients see the same incremental stream as from a generative model.
  for (const piece of answer.match(/\S+\s*/g) ?? []) {
    if (request.signal?.aborted) return;
    yield { type: "delta", text: piece };
  }
  if (request.signal?.aborted) return;
  const prompt = request.messages.map((m) => m.content).join("\n");
  yield { type: "usage", usage: { promptTokens: estimateTokens(prompt), completionTokens: estimateTokens(answer) } };
}

/** The extractive answer for a request: deterministic for the same question and sources. */
export function composeAnswer(request: Pick<ChatRequest, "question" | "sources" | "maxOutputTokens">): string {
  const paragraphs = request.sources.flatMap(paragraphsOf);
  const passages = paragraphs.flatMap((paragraph) => passagesOf(paragraph, WHOLE_PARAGRAPH_CHARS));
  const sourceTerms = request.sources.map(
    (source) => new Set(passages.filter((p) => p.paragraph.source === source).flatMap((p) => [...p.terms])),
  );
  const focus = focusOf(request.question, sourceTerms);
  const candidates = passages
    .map((passage) => quoteOf(passage, paragraphs, focus))
    .filter((quote) => carries(focus, quote.terms))
    // Most of the focus first, then the section named after the question; a stable sort keeps source
    // rank, then text order, on ties.
    .sort((a, b) => b.share - a.share || b.heading - a.heading);
  const best = candidates[0];
  if (!best) return NOT_IN_KNOWLEDGE_BASE;

  const quotes: Quote[] = [];
  for (const candidate of candidates) {
    if (quotes.length === MAX_QUOTES) break;
    // Only passages with the best one's evidence join it: a weaker one would cite what does not answer.
    if (candidate.share !== best.share || candidate.heading !== best.heading) break;
    // Overlapping chunks repeat paragraphs, and a quoted list holds its items: quote each text once.
    if (quotes.some((q) => q.text.includes(candidate.text) || candidate.text.includes(q.text))) continue;
    // The first quote always goes in, however long: an answer must cite something.
    if (quotes.length > 0 && estimateTokens(render([...quotes, candidate])) > request.maxOutputTokens) continue;
    quotes.push(candidate);
  }
  return render(quotes);
}

const render = (quotes: Quote[]) => `${ANSWER_PREFIX} ${quotes.map((q) => `${q.text} [${q.index}]`).join(" ")}`;

/** A passage with the list its paragraph announces, when the passage ends that paragraph. */
function quoteOf(passage: Passage, paragraphs: Paragraph[], focus: Focus): Quote {
  const list = passage.endsParagraph ? listAfter(paragraphs, passage.paragraph, LIST_CHARS) : [];
  const text = [passage.text, ...list.map((p) => p.text)].join(" ");
  const terms = new Set([...passage.terms, ...list.flatMap((p) => analyze(p.text))]);
  const heading = headingMatch(focus, passage.paragraph.source.headingPath);
  return { text, index: passage.paragraph.source.index, terms, share: weightShare(focus, terms), heading };
}

function headingMatch(focus: Focus, headingPath: string[] | undefined): number {
  const heading = new Set(contentTerms(headingPath?.at(-1) ?? ""));
  if (heading.size === 0) return 0;
  const shared = [...heading].filter((term) => focus.weights.has(term)).length;
  return shared / (focus.weights.size + heading.size - shared);
}
