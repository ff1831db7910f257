import { env } from "cloudflare:workers";
import type { Config } from "../config.ts";
import { storeExchange } from "../conversations/turns.ts";
import { recordModelCall } from "../costs/model-calls.ts";
import type { Database } from "../db/client.ts";
import type { Env } from "../env.ts";
import { inBackground } from "../metrics/record.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
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

/** An upstream turn: the session's counters, the model call (metrics and usage row), and the exchange in its conversation. */
export async function recordUpstreamTurn(
  config: Config,
  db: Database,
  state: Pick<State, "sessionId" | "userId" | "conversationId">,
  model: string,
  exchange: Exchange,
  audioOutMs: number,
): Promise<void> {
  const usage = { promptTokens: exchange.inputTokens, completionTokens: exchange.outputTokens };
  // The client already has its response: the row and the metrics go out in the background.
  const cost = await recordModelCall(config, env as unknown as Env, inBackground, {
    feature: "voice",
    provider: "openai",
    model,
    outcome: "ok",
    result: "answered",
    usage,
    latencyMs: exchange.latencyMs,
    firstTokenMs: null,
    userId: state.userId,
    conversationId: state.conversationId,
    channel: "voice",
  });
  await addVoiceUsage(db, state.sessionId, {
    turns: 1,
    inputTokens: exchange.inputTokens,
    outputTokens: exchange.outputTokens,
    costUsd: cost ?? 0,
    audioOutMs,
  });
  if (state.conversationId && exchange.question) {
    await storeExchange(db, state.conversationId, { ...exchange, provider: "openai", model });
  }
}
