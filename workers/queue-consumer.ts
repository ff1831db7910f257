import type { Env } from "../src/env.ts";
import { loadConfig } from "../src/env.ts";
import { runInWorkContext } from "../src/observability/context.ts";
import { log } from "../src/observability/log.ts";
import type { QueueEnvelope } from "../src/observability/outbound.ts";
import { traceFromHeaders } from "../src/observability/trace.ts";

export type MessageHandler = (payload: unknown, env: Env, message: Message<unknown>) => Promise<void>;

/** Handlers by envelope type; each area registers its own (kb ingestion adds "kb.ingest"). */
export const messageHandlers = new Map<string, MessageHandler>();

const isEnvelope = (body: unknown): body is QueueEnvelope =>
  typeof body === "object" && body !== null && typeof (body as QueueEnvelope).type === "string";

/**
 * Delivers each message to the handler for its type, continuing the producer's trace.
 * A failure or an unknown type retries the message; after max_retries the queue moves it to
 * the dead-letter queue, so nothing is silently dropped.
 */
export async function consumeQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const config = loadConfig(env);
  for (const message of batch.messages) {
    const body = message.body;
    const trace = traceFromHeaders(isEnvelope(body) ? body.traceparent : null, isEnvelope(body) ? (body.tracestate ?? null) : null);
    const requestId = (isEnvelope(body) && body.requestId) || crypto.randomUUID();
    await runInWorkContext({ requestId, trace }, async () => {
      const handler = isEnvelope(body) ? messageHandlers.get(body.type) : undefined;
      const fields = { queue: batch.queue, message_id: message.id, attempt: message.attempts };
      if (!config.ok || !handler) {
        const reason = !config.ok ? "bad environment" : "no handler for this message type";
        log("error", "queue message not processed", { ...fields, reason, type: isEnvelope(body) ? body.type : null });
        message.retry();
        return;
      }
      try {
        await handler((body as QueueEnvelope).payload, env, message);
        message.ack();
      } catch (error) {
        log("error", "queue message failed", { ...fields, error: error instanceof Error ? error.message : String(error) });
        message.retry({ delaySeconds: Math.min(300, 5 * 2 ** message.attempts) });
      }
    });
  }
}
