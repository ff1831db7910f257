import type { Env } from "../env.ts";
import { loadConfig } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { runInWorkContext } from "../observability/context.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";
import type { QueueEnvelope } from "../observability/outbound.ts";
import { traceFromHeaders } from "../observability/trace.ts";

/**
 * How a handler finished with its message (a failure throws instead): "done", or "dead_letter" when it gave up
 * and moved the message to a dead-letter queue itself. Either way the message leaves this queue (ack).
 */
export type HandlerResult = "done" | "dead_letter";

export type MessageHandler = (payload: unknown, env: Env, message: Message<unknown>) => Promise<HandlerResult>;

/** Handlers by envelope type (QueueEnvelope.type). */
export type HandlerTable = Readonly<Record<string, MessageHandler>>;

const isEnvelope = (body: unknown): body is QueueEnvelope =>
  typeof body === "object" && body !== null && typeof (body as QueueEnvelope).type === "string";

/**
 * Delivers each message to the handler for its type, continuing the producer's trace.
 * A failure or an unknown type retries the message; after max_retries the queue moves it to
 * the dead-letter queue, so nothing is silently dropped. Each message is counted by outcome:
 * ack, retry, or dead_letter (a handler moved it to a dead-letter queue itself).
 */
export async function consumeQueue(
  handlers: HandlerTable,
  batch: MessageBatch<unknown>,
  env: Env,
  ctx?: ExecutionContext,
): Promise<void> {
  const config = loadConfig(env);
  for (const message of batch.messages) {
    const body = message.body;
    const envelope = isEnvelope(body) ? body : undefined;
    const trace = traceFromHeaders(envelope?.traceparent ?? null, envelope?.tracestate ?? null);
    const requestId = envelope?.requestId ?? crypto.randomUUID();
    const outcome = await runInWorkContext({ requestId, trace }, async () => {
      const handler = envelope && Object.hasOwn(handlers, envelope.type) ? handlers[envelope.type] : undefined;
      const fields = { queue: batch.queue, message_id: message.id, attempt: message.attempts, type: envelope?.type };
      if (!config.ok || !handler || !envelope) {
        const reason = !config.ok ? "bad environment" : "no handler for this message type";
        log("error", "queue message not processed", { ...fields, reason });
        message.retry();
        return "retry";
      }
      try {
        const result = await handler(envelope.payload, env, message);
        message.ack();
        return result === "dead_letter" ? "dead_letter" : "ack";
      } catch (error) {
        log("error", "queue message failed", {
          ...fields,
          error: describeError(error),
        });
        message.retry({ delaySeconds: Math.min(300, 5 * 2 ** message.attempts) });
        return "retry";
      }
    });
    const lag = envelope ? (Date.now() - Date.parse(envelope.enqueuedAt)) / 1000 : Number.NaN;
    await recordMetrics(
      env,
      ctx,
      { name: "queue_messages_total", labels: { queue: batch.queue, outcome }, value: 1 },
      ...(Number.isFinite(lag)
        ? [{ name: "queue_lag_seconds" as const, labels: { queue: batch.queue }, value: Math.max(0, lag) }]
        : []),
    );
  }
}
