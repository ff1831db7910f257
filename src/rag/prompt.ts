import { estimateTokens } from "../kb/chunk.ts";
import type { ChatMessage, PromptSource } from "../llm/port.ts";

export interface HistoryTurn {
  role: "user" | "assistant";
  content: string;
}

/** A retrieved chunk as a numbered source: what the model reads and what a citation points back to. */
export interface SourcePassage {
  index: number;
  documentId: string;
  externalId: string | null;
  title: string;
  chunkId: string;
  page: number | null;
  headingPath: string[];
  text: string;
  score: number;
}

interface PromptInput {
  sources: SourcePassage[];
  /** Oldest first; only the newest turns that fit the budget are kept. */
  history: HistoryTurn[];
  question: string;
  historyTokens: number;
  disclaimer: string;
}

interface Prompt {
  messages: ChatMessage[];
  sources: PromptSource[];
  /** How many of the history turns made it into the budget. */
  historyTurns: number;
}

function systemPolicy(disclaimer: string): string {
  return [
    "You are VoiceAssist, an assistant for clinicians that answers from the organisation's knowledge base.",
    "Answer only from the numbered sources below. Cite each statement with the number of its source in square brackets, like [1] or [2][3], right after the statement.",
    "If the sources do not answer the question, say plainly that the knowledge base does not cover it; do not answer from general knowledge and do not guess.",
    "Never cite a number that is not in the list of sources. Be concise.",
    disclaimer ? `Medical disclaimer, to end every clinical answer with: ${disclaimer}` : "",
  ]
    .filter(Boolean)
    .join("\n");
}

/** Where a source sits in its document, for the model and for people reading citations. */
const locationOf = (source: Pick<SourcePassage, "page" | "headingPath">): string =>
  [source.page !== null ? `page ${source.page}` : "", source.headingPath.join(" > ")].filter(Boolean).join(", ");

function formatSources(sources: SourcePassage[]): string {
  if (sources.length === 0) return "Sources: none were found for this question.";
  const blocks = sources.map((s) => {
    const where = locationOf(s);
    return `[${s.index}] ${s.title}${where ? ` (${where})` : ""}\n${s.text}`;
  });
  return `Sources:\n\n${blocks.join("\n\n")}`;
}

/** The newest turns whose estimated tokens fit the budget, oldest first. */
export function recentHistory(history: HistoryTurn[], budgetTokens: number): HistoryTurn[] {
  const kept: HistoryTurn[] = [];
  let used = 0;
  for (let i = history.length - 1; i >= 0; i--) {
    const turn = history[i] as HistoryTurn;
    used += estimateTokens(turn.content);
    if (used > budgetTokens) break;
    kept.unshift(turn);
  }
  return kept;
}

/** The prompt in the issue's order: policy, numbered sources, recent history, the question. */
export function buildPrompt(input: PromptInput): Prompt {
  const history = recentHistory(input.history, input.historyTokens);
  return {
    messages: [
      { role: "system", content: `${systemPolicy(input.disclaimer)}\n\n${formatSources(input.sources)}` },
      ...history.map((turn) => ({ role: turn.role, content: turn.content })),
      { role: "user", content: input.question },
    ],
    sources: input.sources.map((s) => ({ index: s.index, title: s.title, text: s.text, headingPath: s.headingPath })),
    historyTurns: history.length,
  };
}
