// Provider verification of the message pacts: each message is built by the app's own code (the chat room's frame
// builders, the ingestion producer) and checked against the committed contract. No server or database involved,
// so it runs in both CI passes.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { Verifier } from "@pact-foundation/pact";
import { describe, it } from "vitest";
import { connectedFrame, errorFrame, historyFrame, pongFrame, turnFrame } from "../../src/conversations/chat-frames.ts";
import type { MessageRow } from "../../src/conversations/store.ts";
import type { Env } from "../../src/env.ts";
import { queueIngestion } from "../../src/kb/ingest.ts";
import { runInWorkContext } from "../../src/observability/context.ts";
import { newSpanId, newTraceId } from "../../src/observability/trace.ts";
import type { Answer } from "../../src/rag/answer.ts";
import type { Citation } from "../../src/rag/citations.ts";
import { CHAT_PROVIDER, CONTRACTS, INGEST_PROVIDER } from "./support/pacts.ts";

/** Runs `build` as a request or frame of the app would: with a request id and a trace. */
const inRequest = <T>(build: () => T): T =>
  runInWorkContext(
    { requestId: randomUUID(), trace: { traceId: newTraceId(), spanId: newSpanId(), sampled: true } },
    build,
  );

const conversationId = randomUUID();
const citation: Citation = {
  index: 1,
  document_id: randomUUID(),
  external_id: null,
  title: "Contract dosage guide",
  chunk_id: `${randomUUID()}:1:0`,
  page: null,
  snippet: "Adults take two tablets daily.",
  score: 0.82,
};

/** A stored message row as the store returns it. */
function row(role: "user" | "assistant", replyTo: string | null = null): MessageRow {
  const user = role === "user";
  return {
    id: randomUUID(),
    conversationId,
    turn: 1,
    role,
    version: 1,
    active: true,
    content: user ? "How many tablets daily?" : "Adults take two tablets daily [1].",
    clientMessageId: user ? "socket-1" : null,
    replyStatus: user ? "answered" : null,
    replyClaimedAt: null,
    replyTo,
    citations: user ? [] : [citation],
    invalidCitations: 0,
    provider: user ? null : "local",
    model: user ? null : "local-extractive-v1",
    promptTokens: user ? null : 120,
    completionTokens: user ? null : 12,
    costUsd: user ? null : 0,
    latencyMs: user ? null : 25,
    firstTokenMs: user ? null : 10,
    createdAt: new Date(),
  } as MessageRow;
}

const question = row("user");
const answer = row("assistant", question.id);

const chatFrames = {
  "a connected frame": () => connectedFrame(conversationId, randomUUID()),
  "a history frame with the stored turns": () => historyFrame([question, answer]),
  "a user_message.created frame": () => turnFrame({ type: "user_message", message: question, replayed: false }),
  "a chunk frame": () => turnFrame({ type: "delta", text: "Adults take " }),
  "a message.done frame with its citations": () =>
    turnFrame({
      type: "done",
      answer: { citations: [citation] } as Answer,
      message: answer,
      userMessage: question,
      replayed: false,
    }),
  "an error frame naming the field at fault": () =>
    inRequest(() =>
      errorFrame("VALIDATION_FAILED", "content must not be empty", [
        { field: "content", message: "must not be empty" },
      ]),
    ),
  "a pong frame": () => pongFrame(),
};

/** The body queueIngestion sends to the kb-ingest queue for `job`. */
async function ingestMessage(job: Parameters<typeof queueIngestion>[1]): Promise<unknown> {
  const sent: unknown[] = [];
  const env = { KB_INGEST: { send: async (body: unknown) => void sent.push(body) } } as unknown as Env;
  await inRequest(() => queueIngestion(env, job));
  return sent[0];
}

const ingestMessages = {
  "an ingestion request for an uploaded document": () => ingestMessage({ documentId: randomUUID(), generation: 1 }),
  "an ingestion request for a reindex": () =>
    ingestMessage({ documentId: randomUUID(), generation: 2, requestedAt: new Date().toISOString() }),
};

const verify = (provider: string, consumer: string, messageProviders: Record<string, () => unknown>) =>
  new Verifier({
    provider,
    pactUrls: [join(CONTRACTS, `${consumer}-${provider}.json`)],
    messageProviders: Object.fromEntries(
      Object.entries(messageProviders).map(([description, build]) => [description, async () => build()]),
    ),
    logLevel: "warn",
  }).verifyProvider();

describe("message providers", () => {
  it(
    `${CHAT_PROVIDER}: the chat room's frames honour the web client's pact`,
    () => verify(CHAT_PROVIDER, "voiceassist-web-client", chatFrames),
    60_000,
  );

  it(
    `${INGEST_PROVIDER}: the ingestion producer honours the ingest consumer's pact`,
    () => verify(INGEST_PROVIDER, "voiceassist-ingest-consumer", ingestMessages),
    60_000,
  );
});
