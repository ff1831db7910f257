import { createDb } from "../db/client.ts";
import { requireConfig } from "../env.ts";
import { toApiError } from "../errors.ts";
import { hybridSearch } from "../rag/search.ts";
import { VOICE_INSTRUCTIONS } from "./grounding.ts";
import { errorEvent } from "./protocol.ts";
import { Relay, type RelayIo } from "./relay.ts";
import type { SessionIo } from "./session-state.ts";
import { addVoiceUsage } from "./sessions.ts";
import { connectUpstream, type UpstreamSettings } from "./upstream.ts";
import { recordUpstreamTurn } from "./usage-sync.ts";

/** What upstream mode needs beyond the session's parts: closing its sockets and ending it. */
interface RelaySessionIo extends SessionIo {
  closeSockets(code: number, reason: string): void;
  end(reason: string): Promise<void>;
}

/**
 * Upstream mode: a relay to OpenAI Realtime with our grounding; the tool runs here, turns are stored here.
 * Returned unstarted, so the session holds it (and closes it) even when starting fails.
 */
export function relaySession(io: RelaySessionIo, upstream: UpstreamSettings): Relay {
  const config = requireConfig(io.env);
  const state = io.state();
  const db = createDb(config);
  // Audio sent to the client since the last finished turn, counted into that turn.
  let audioOutMs = 0;
  const relayIo: RelayIo = {
    toClient: (event) => io.send(event),
    connect: (handlers) => connectUpstream(upstream, handlers),
    search: async (query, topK) => {
      const found = await hybridSearch(
        config,
        io.env,
        { query, topK, scoreFloor: config.RAG_SCORE_FLOOR },
        { ctx: io.ctx, userId: state.userId },
      );
      return found.results.map((r, i) => ({
        index: i + 1,
        document_id: r.documentId,
        external_id: r.externalId,
        title: r.title,
        chunk_id: r.chunkId,
        page: r.page,
        snippet: r.snippet,
        score: r.score,
        text: r.text,
      }));
    },
    finished: async (exchange) => {
      const turnAudioOutMs = Math.round(audioOutMs);
      audioOutMs = 0;
      // The client already has its response.done: a turn that cannot be recorded is logged, not thrown.
      try {
        await recordUpstreamTurn(config, db, state, upstream.model, exchange, turnAudioOutMs);
      } catch (error) {
        io.logFailure("voice turn not recorded", toApiError(error).code, error, {});
      }
    },
    observe: (fact) => {
      if ("audioOutMs" in fact) audioOutMs += fact.audioOutMs;
      else if ("bargeIn" in fact) {
        io.metric({ name: "voice_barge_ins_total", labels: {}, value: 1 });
        io.ctx.waitUntil(addVoiceUsage(db, state.sessionId, { bargeIns: 1 }));
      } else if ("transcript" in fact) {
        io.metric({ name: "voice_first_transcript_seconds", labels: { mode: "upstream" }, value: fact.seconds });
      } else if ("turn" in fact) {
        io.metric({ name: "voice_turn_latency_seconds", labels: { outcome: fact.turn }, value: fact.seconds });
      } else io.metric({ name: "voice_time_to_first_seconds", labels: { kind: fact.first }, value: fact.seconds });
    },
    failed: (reason) => {
      io.send(
        errorEvent({
          type: "server_error",
          code: reason,
          message: "The connection to the voice model was lost and could not be restored.",
        }),
      );
      io.closeSockets(1011, reason);
      io.ctx.waitUntil(io.end(reason));
    },
  };
  return new Relay(relayIo, state.session, {
    instructions: VOICE_INSTRUCTIONS(config.RAG_MEDICAL_DISCLAIMER),
    reconnectAfterMs: upstream.refreshSeconds * 1000,
  });
}
