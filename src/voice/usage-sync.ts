import type { Config } from "../config.ts";
import { storeExchange } from "../conversations/turns.ts";
import type { Database } from "../db/client.ts";
import { costUsd, priceFor } from "../llm/pricing.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import { recordUsage } from "../rag/usage.ts";
import type { Exchange } from "./relay.ts";
import type { State } from "./session-state.ts";
import { addVoiceUsage, setVoiceAudioIn } from "./sessions.ts";

// Audio seconds reach the session row at most this often (and at every commit and at the end), not per frame.
const AUDIO_SYNC_MS = 5_000;

/** Keeps the session row's audio-in counter following the session's, without a write per frame. */
export class AudioInSync {
  private syncedAt = 0;
  private readonly db: () => Database;

  constructor(db: () => Database) {
    this.db = db;
  }

  /** Writes the audio received so far to the session row. */
  async sync(state: Pick<State, "sessionId" | "audioMs">): Promise<void> {
    this.syncedAt = Date.now();
    try {
      await setVoiceAudioIn(this.db(), state.sessionId, Math.round(state.audioMs));
    } catch (error) {
      log("warn", "voice session usage not saved; next sync retries", { error: describeError(error) });
    }
  }

  /** Bookkeeping never holds audio up: the row catches up in the background. */
  syncWhenDue(state: Pick<State, "sessionId" | "audioMs">, waitUntil: (work: Promise<unknown>) => void): void {
    if (Date.now() - this.syncedAt > AUDIO_SYNC_MS) waitUntil(this.sync(state));
  }
}

/** A local turn's counters: one turn and its tokens (local mode has no priced model and no audio out). */
export async function recordLocalTurn(
  db: Database,
  sessionId: string,
  usage: { prompt: number; completion: number },
): Promise<void> {
  await addVoiceUsage(db, sessionId, { turns: 1, inputTokens: usage.prompt, outputTokens: usage.completion });
}

/** An upstream turn: the session's counters, the LLM usage ledger, and the exchange in its conversation. */
export async function recordUpstreamTurn(
  config: Config,
  db: Database,
  state: Pick<State, "sessionId" | "userId" | "conversationId">,
  model: string,
  exchange: Exchange,
  audioOutMs: number,
): Promise<void> {
  const usage = { promptTokens: exchange.inputTokens, completionTokens: exchange.outputTokens };
  const cost = costUsd(priceFor(config, model), usage) ?? null;
  await addVoiceUsage(db, state.sessionId, {
    turns: 1,
    inputTokens: exchange.inputTokens,
    outputTokens: exchange.outputTokens,
    costUsd: cost ?? 0,
    audioOutMs,
  });
  await recordUsage(config, {
    userId: state.userId,
    conversationId: state.conversationId,
    channel: "voice",
    provider: "openai",
    model,
    outcome: "answered",
    usage,
    costUsd: cost,
    latencyMs: exchange.latencyMs,
    firstTokenMs: null,
  });
  if (state.conversationId && exchange.question) {
    await storeExchange(db, state.conversationId, { ...exchange, provider: "openai", model });
  }
}
