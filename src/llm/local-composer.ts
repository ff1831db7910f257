import { estimateTokens, sentencesOf } from "../kb/chunk.ts";
import { analyze } from "../kb/terms.ts";
import type { ChatChunk, ChatModel, ChatRequest, PromptSource } from "./port.ts";

/** The whole answer when no source shares a term with the question (no markers: nothing is cited). */
export const NOT_IN_KNOWLEDGE_BASE = "The knowledge base does not cover this question.";

const ANSWER_PREFIX = "From the knowledge base:";
const MAX_SENTENCES = 3;
const MAX_PER_SOURCE = 2;
// Words that shape a question without naming its subject; on their own they must not make a match.
const QUESTION_WORDS = new Set(
  analyze("what which who whom whose when where why how do does did can could should would may might must i we you"),
);

interface Candidate {
  text: string;
  source: PromptSource;
  /** Distinct question terms in the sentence. */
  matches: number;
}

/**
 * The answer provider used without an OpenAI key: quotes the source sentences that share the most
 * question terms (Porter-stemmed, as in keyword search) verbatim, each followed by its source marker.
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
  const terms = new Set(analyze(request.question).filter((term) => !QUESTION_WORDS.has(term)));
  const candidates = request.sources.flatMap((source) =>
    sentencesOf(source.text, 0).map(({ start, end }): Candidate => {
      const text = source.text.slice(start, end).trim();
      return { text, source, matches: new Set(analyze(text).filter((term) => terms.has(term))).size };
    }),
  );
  // A stable sort: ties keep source rank, then sentence order.
  candidates.sort((a, b) => b.matches - a.matches);
  const best = candidates[0]?.matches ?? 0;
  if (best === 0) return NOT_IN_KNOWLEDGE_BASE;

  const picked: Candidate[] = [];
  for (const candidate of candidates) {
    if (picked.length === MAX_SENTENCES) break;
    // A sentence with under half the best match adds noise, not support.
    if (candidate.matches * 2 < best) break;
    if (picked.filter((p) => p.source === candidate.source).length === MAX_PER_SOURCE) continue;
    // Overlapping chunks repeat sentences: quote each once.
    if (picked.some((p) => p.text === candidate.text)) continue;
    // The first sentence always goes in, however long: an answer must cite something.
    if (picked.length > 0 && estimateTokens(quote([...picked, candidate])) > request.maxOutputTokens) continue;
    picked.push(candidate);
  }
  return quote(picked);
}

const quote = (picked: Candidate[]) =>
  `${ANSWER_PREFIX} ${picked.map((p) => `${p.text} [${p.source.index}]`).join(" ")}`;
