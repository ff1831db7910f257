import type { Config } from "../config.ts";
import { type CallOutcome, callCost, recordModelCall } from "../costs/model-calls.ts";
import { apiErrorOf } from "../db/unavailable.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { createChatModel } from "../llm/index.ts";
import { NOT_IN_KNOWLEDGE_BASE } from "../llm/local-composer.ts";
import type { ChatModel, ChatUsage } from "../llm/port.ts";
import { type MetricEvent, recordMetrics } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { type PhiCounts, phiMetricEvents, screenForCloud } from "../safety/phi.ts";
import { type Citation, CitationFilter, citationsFor } from "./citations.ts";
import type { SearchFilters } from "./filters.ts";
import { buildPrompt, type HistoryTurn, type SourcePassage } from "./prompt.ts";
import { hybridSearch, type SearchDeps } from "./search.ts";

export type AnswerChannel = "query" | "conversation" | "websocket" | "voice";
type AnswerOutcome = "answered" | "no_sources" | "blocked" | "cancelled" | "error";

interface AnswerRequest {
  question: string;
  /** Earlier turns of the conversation, oldest first. */
  history?: HistoryTurn[];
  filters?: SearchFilters;
  channel: AnswerChannel;
  userId: string;
  conversationId?: string;
  /** Aborted when the client goes away: the model call is cancelled. */
  signal?: AbortSignal;
}

/** A finished answer: what is streamed as `done` and stored with an assistant message. */
export interface Answer {
  content: string;
  citations: Citation[];
  invalidCitations: number;
  provider: string;
  model: string;
  usage: ChatUsage;
  costUsd: number | null;
  latencyMs: number;
  firstTokenMs: number | null;
  outcome: "answered" | "no_sources";
  disclaimer: string;
}

export type AnswerEvent =
  | { type: "delta"; text: string }
  | { type: "citations"; citations: Citation[] }
  | { type: "done"; answer: Answer }
  | { type: "error"; code: string; message: string };

export interface AnswerDeps extends SearchDeps {
  model?: ChatModel;
}

const stage = (name: string, seconds: number): MetricEvent => ({
  name: "rag_stage_duration_seconds",
  labels: { stage: name },
  value: seconds,
});

/**
 * Answers a question from the knowledge base: screen for PHI, retrieve, prompt, stream the model's
 * answer with invalid citation markers removed, then the citations and a `done` with usage and cost.
 * Never throws: failures end the stream with one `error` event.
 */
export async function* answerQuestion(
  config: Config,
  env: Env,
  request: AnswerRequest,
  deps: AnswerDeps = {},
): AsyncGenerator<AnswerEvent> {
  const started = performance.now();
  const elapsedMs = () => Math.round(performance.now() - started);
  const model = deps.model ?? createChatModel(config);
  const metrics: MetricEvent[] = [];
  let outcome: AnswerOutcome = "error";
  let firstTokenMs: number | null = null;
  let usage: ChatUsage = { promptTokens: 0, completionTokens: 0 };
  let calledModel = false;
  let failureCode: string | undefined;

  try {
    // Nothing leaves for a cloud model before it is screened; the local composer keeps text in the Worker.
    const screened = screen(config, model, request, metrics);
    if (!screened) {
      outcome = "blocked";
      throw new ApiError(
        "PHI_BLOCKED",
        "The question or conversation contains what looks like protected health information (a name, date of birth, MRN, SSN, phone number, email or address). Remove it and ask again; nothing was sent to the model.",
      );
    }

    const retrieveStarted = performance.now();
    const found = await hybridSearch(
      config,
      env,
      {
        query: screened.question,
        topK: config.RAG_SOURCES,
        scoreFloor: config.RAG_SCORE_FLOOR,
        filters: request.filters,
      },
      // The query embedding and the reranker are paid for by whoever asked.
      { ...deps, userId: request.userId },
    );
    metrics.push(stage("retrieve", (performance.now() - retrieveStarted) / 1000));
    // Embedding and reranking happen inside retrieval; a cached search ran neither.
    for (const name of ["embed", "rerank"] as const) {
      const seconds = found.stageSeconds[name];
      if (seconds !== undefined) metrics.push(stage(name, seconds));
    }
    const sources: SourcePassage[] = found.results.map((r, i) => ({ ...r, index: i + 1 }));

    if (sources.length === 0) {
      // Nothing to ground an answer in: say so without asking a model that could only guess.
      outcome = "no_sources";
      yield { type: "delta", text: NOT_IN_KNOWLEDGE_BASE };
      yield { type: "citations", citations: [] };
      yield { type: "done", answer: finished(NOT_IN_KNOWLEDGE_BASE, [], 0, "no_sources") };
      return;
    }

    const prompt = buildPrompt({
      sources,
      history: screened.history,
      question: screened.question,
      historyTokens: config.CHAT_HISTORY_TOKENS,
      disclaimer: config.RAG_MEDICAL_DISCLAIMER,
    });
    const filter = new CitationFilter(sources.length);
    let content = "";
    calledModel = true;
    for await (const chunk of model.stream({
      ...prompt,
      question: screened.question,
      maxOutputTokens: config.CHAT_MAX_OUTPUT_TOKENS,
      signal: request.signal,
    })) {
      if (request.signal?.aborted) break;
      if (chunk.type === "usage") {
        usage = chunk.usage;
        continue;
      }
      if (firstTokenMs === null) {
        firstTokenMs = elapsedMs();
        metrics.push(stage("first_token", firstTokenMs / 1000));
      }
      const text = filter.push(chunk.text);
      content += text;
      if (text) yield { type: "delta", text };
    }
    if (request.signal?.aborted) {
      outcome = "cancelled";
      return;
    }
    const rest = filter.flush();
    content += rest;
    if (rest) yield { type: "delta", text: rest };

    const citations = citationsFor(content, filter.cited, sources);
    metrics.push(
      { name: "rag_citations_per_answer", labels: {}, value: citations.length },
      ...(filter.dropped ? [{ name: "rag_invalid_citations_total", labels: {}, value: filter.dropped } as const] : []),
    );
    outcome = "answered";
    yield { type: "citations", citations };
    yield { type: "done", answer: finished(content, citations, filter.dropped, "answered") };
  } catch (error) {
    if (request.signal?.aborted) {
      outcome = "cancelled";
      return;
    }
    const failure = apiErrorOf(error);
    failureCode = failure.code;
    if (failure.code === "INTERNAL") log("error", "answer failed", { error: describeError(error) });
    yield { type: "error", code: failure.code, message: failure.message };
  } finally {
    metrics.push(stage("total", elapsedMs() / 1000), {
      name: "rag_queries_total",
      labels: { channel: request.channel, outcome },
      value: 1,
    });
    if (calledModel) {
      const callOutcome: CallOutcome =
        outcome === "answered"
          ? "ok"
          : failureCode === "UPSTREAM_TIMEOUT"
            ? "timeout"
            : outcome === "cancelled"
              ? "cancelled"
              : "error";
      const call = {
        feature: "answers",
        provider: model.provider,
        model: model.model,
        outcome: callOutcome,
        result: outcome,
        usage,
        latencyMs: elapsedMs(),
        firstTokenMs,
        userId: request.userId,
        conversationId: request.conversationId ?? null,
        channel: request.channel,
      } as const;
      await recordModelCall(config, env, deps.ctx, call, metrics);
    } else await recordMetrics(env, deps.ctx, ...metrics);
  }

  function finished(content: string, citations: Citation[], invalid: number, result: Answer["outcome"]): Answer {
    const called = result === "answered";
    return {
      content,
      citations,
      invalidCitations: invalid,
      provider: called ? model.provider : "none",
      model: called ? model.model : "none",
      usage,
      costUsd: called ? callCost(config, model.model, usage) : 0,
      latencyMs: elapsedMs(),
      firstTokenMs,
      outcome: result,
      disclaimer: config.RAG_MEDICAL_DISCLAIMER,
    };
  }
}

/** The question and history as they may leave the Worker, or undefined when PHI_MODE=block refuses them. */
function screen(
  config: Config,
  model: ChatModel,
  request: AnswerRequest,
  metrics: MetricEvent[],
): { question: string; history: HistoryTurn[] } | undefined {
  const history = request.history ?? [];
  if (model.provider === "local" || config.PHI_MODE === "off") return { question: request.question, history };
  const counts: PhiCounts = {};
  const check = (text: string) => {
    const result = screenForCloud(text, config.PHI_MODE);
    for (const [type, n] of Object.entries(result.counts))
      counts[type as keyof PhiCounts] = (counts[type as keyof PhiCounts] ?? 0) + (n ?? 0);
    return result;
  };
  const question = check(request.question);
  const turns = history.map((turn) => ({ turn, result: check(turn.content) }));
  metrics.push(...phiMetricEvents(counts, config.PHI_MODE));
  if (!question.allowed || turns.some((t) => !t.result.allowed)) return undefined;
  return { question: question.text, history: turns.map((t) => ({ role: t.turn.role, content: t.result.text })) };
}
