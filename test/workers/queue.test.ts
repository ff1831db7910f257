import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { messageHandlers as workerHandlers } from "../../src/jobs/handlers.ts";
import { consumeQueue, type MessageHandler } from "../../src/jobs/queue.ts";
import { INGEST_MESSAGE } from "../../src/kb/ingest.ts";
import { runInWorkContext } from "../../src/observability/context.ts";
import { envelope } from "../../src/observability/outbound.ts";
import { traceFromHeaders } from "../../src/observability/trace.ts";

const producerTrace = traceFromHeaders("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", null);

/** The handler table of these tests; each test adds the types it delivers. */
const messageHandlers: Record<string, MessageHandler> = {};

async function deliver(body: unknown) {
  const batch = createMessageBatch("kb-ingest", [{ id: "m1", timestamp: new Date(), attempts: 1, body }]);
  const ctx = createExecutionContext();
  await consumeQueue(messageHandlers, batch, env, ctx);
  return getQueueResult(batch, ctx);
}

describe("queue messages carry the producer's trace", () => {
  it("stamps the envelope with a child of the current trace and the request id", () => {
    const message = runInWorkContext({ requestId: "req-queue-0001", trace: producerTrace }, () =>
      envelope("test.echo", { n: 1 }),
    );
    expect(message).toMatchObject({ type: "test.echo", payload: { n: 1 }, requestId: "req-queue-0001" });
    expect(message.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  });

  it("runs the handler inside the producer's trace and acks", async () => {
    let seenTrace: string | undefined;
    messageHandlers["test.echo"] = async () => {
      const { currentWorkContext } = await import("../../src/observability/context.ts");
      seenTrace = currentWorkContext()?.trace.traceId;
      return "done";
    };
    const message = runInWorkContext({ requestId: "req-queue-0002", trace: producerTrace }, () =>
      envelope("test.echo", {}),
    );
    const result = await deliver(message);
    expect(result.explicitAcks).toEqual(["m1"]);
    expect(seenTrace).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  it("retries a failing handler and an unknown type (the DLQ takes it after max_retries)", async () => {
    messageHandlers["test.fail"] = async () => {
      throw new Error("boom");
    };
    expect((await deliver(envelope("test.fail", {}))).retryMessages.map((m) => m.msgId)).toEqual(["m1"]);
    expect((await deliver({ type: "nobody.handles.this" })).retryMessages.map((m) => m.msgId)).toEqual(["m1"]);
    expect((await deliver("not an envelope")).retryMessages.map((m) => m.msgId)).toEqual(["m1"]);
    expect((await deliver({ type: "toString" })).retryMessages.map((m) => m.msgId)).toEqual(["m1"]);
  });

  it("counts every message by queue and outcome (ack, dead_letter, retry) in queue_messages_total", async () => {
    messageHandlers["test.count"] = async () => "done";
    messageHandlers["test.dead-letter"] = async () => "dead_letter";
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    await deliver(envelope("test.count", {}));
    // The handler moved it to a dead-letter queue itself: it leaves this queue, counted as dead_letter.
    expect((await deliver(envelope("test.dead-letter", {}))).explicitAcks).toEqual(["m1"]);
    await deliver({ type: "nobody.handles.this" });
    const outcomes = writes.mock.calls
      .map(([point]) => point?.blobs)
      .filter((b) => b?.[0] === "queue_messages_total")
      .map((b) => b?.slice(2));
    expect(outcomes).toEqual([
      ["kb-ingest", "ack"],
      ["kb-ingest", "dead_letter"],
      ["kb-ingest", "retry"],
    ]);
    writes.mockRestore();
  });

  it("times each enveloped message from enqueue to delivery in queue_lag_seconds", async () => {
    messageHandlers["test.lag"] = async () => "done";
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    await deliver(envelope("test.lag", {}));
    await deliver(envelope("test.lag", {}));
    await deliver("not an envelope"); // no enqueue time: no lag sample
    const lags = writes.mock.calls.map(([point]) => point).filter((p) => p?.blobs?.[0] === "queue_lag_seconds");
    writes.mockRestore();
    expect(lags.map((p) => p?.blobs?.slice(2))).toEqual([["kb-ingest"], ["kb-ingest"]]);
    for (const p of lags) expect(p?.doubles?.[0]).toBeGreaterThanOrEqual(0);
  });

  it("the Worker's table routes document ingestion and nothing else", () => {
    expect(Object.keys(workerHandlers)).toEqual([INGEST_MESSAGE]);
  });
});
