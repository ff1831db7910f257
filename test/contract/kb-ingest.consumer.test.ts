// Message pact of the kb-ingest queue message, as the ingestion consumer reads it: the envelope consumeQueue
// routes by type and traces by (src/jobs/queue.ts), and the payload handleIngestMessage parses (src/kb/queue.ts).
// Writes contracts/voiceassist-ingest-consumer-voiceassist-kb-ingest-queue.json; messages.provider.test.ts verifies.
import { MatchersV3, PactV4 } from "@pact-foundation/pact";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INGEST_MESSAGE } from "../../src/kb/ingest.ts";
import { IngestPayload } from "../../src/kb/queue.ts";
import type { QueueEnvelope } from "../../src/observability/outbound.ts";
import { traceFromHeaders } from "../../src/observability/trace.ts";
import { expectCommitted, INGEST_PROVIDER, isoTime, scratchDir, uuid } from "./support/pacts.ts";

const { integer, regex } = MatchersV3;
const CONSUMER = "voiceassist-ingest-consumer";
const FILE = `${CONSUMER}-${INGEST_PROVIDER}.json`;
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

let dir: string;
let pact: PactV4;
beforeAll(async () => {
  dir = await scratchDir();
  pact = new PactV4({ consumer: CONSUMER, provider: INGEST_PROVIDER, dir, logLevel: "warn" });
});
afterAll(() => expectCommitted(dir, FILE));

const envelope = (payload: object) => ({
  type: INGEST_MESSAGE,
  payload,
  traceparent: regex("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", TRACEPARENT),
  enqueuedAt: isoTime(),
});

/** What the consumer does with a delivered body before ingesting: route it, continue its trace, parse its job. */
function receive(body: unknown) {
  const message = body as QueueEnvelope;
  expect(message.type).toBe(INGEST_MESSAGE);
  const trace = traceFromHeaders(message.traceparent, message.tracestate ?? null);
  expect(Number.isFinite(Date.parse(message.enqueuedAt))).toBe(true);
  return { trace, job: IngestPayload.parse(message.payload) };
}

describe("kb-ingest queue message", () => {
  it("parses the ingestion of an uploaded document", () =>
    pact
      .addAsynchronousInteraction()
      .expectsToReceive("an ingestion request for an uploaded document", (builder) =>
        builder.withJSONContent(envelope({ documentId: uuid(), generation: integer(1) })),
      )
      .executeTest(async (m) => {
        const { trace, job } = receive(m.contents.content);
        expect(trace.traceId).toBe(TRACE_ID);
        expect(job).toEqual({ documentId: "0b6f1c9e-4d2a-4f6b-9c1e-7a8d2e3f4b5c", generation: 1 });
      }));

  it("parses a reindex request with the time it was asked for", () =>
    pact
      .addAsynchronousInteraction()
      .expectsToReceive("an ingestion request for a reindex", (builder) =>
        builder.withJSONContent(
          envelope({ documentId: uuid(), generation: integer(2), requestedAt: isoTime("2026-12-01T10:00:00.000Z") }),
        ),
      )
      .executeTest(async (m) => {
        const { job } = receive(m.contents.content);
        expect(job.requestedAt).toBe("2026-12-01T10:00:00.000Z");
      }));
});
