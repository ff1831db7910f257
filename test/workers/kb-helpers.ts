import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { documents } from "../../src/db/schema/kb.ts";
import type { Env } from "../../src/env.ts";
import { messageHandlers } from "../../src/jobs/handlers.ts";
import { consumeQueue } from "../../src/jobs/queue.ts";
import { INGEST_QUEUE, ingestDocument } from "../../src/kb/ingest.ts";
import type { QueueEnvelope } from "../../src/observability/outbound.ts";
import { call } from "./harness.ts";
import { config, db } from "./identity-helpers.ts";

/** Uploads bytes as a multipart form, the way a browser or curl -F would. */
export async function upload(
  token: string,
  file: { bytes: Uint8Array | string; name: string; type?: string },
  fields: Record<string, string> = {},
  overrides: Record<string, unknown> = {},
) {
  const form = new FormData();
  form.set("file", new File([file.bytes], file.name, { type: file.type ?? "application/octet-stream" }));
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return call("POST", "/api/admin/kb/documents", { body: form, token, overrides });
}

export const documentRow = async (id: string) => (await db.select().from(documents).where(eq(documents.id, id)))[0];

/** Runs the ingestion of a document's next generation now, as the queue consumer would. */
export async function ingestNow(id: string, attempt = 1) {
  const row = await documentRow(id);
  return ingestDocument(env, config, { documentId: id, generation: (row?.activeGeneration ?? 0) + 1 }, attempt);
}

/** Waits for the real queue consumer to finish a document. */
export async function untilSettled(id: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await documentRow(id);
    if (!row || row.status === "ready" || row.status === "failed") return row;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`document ${id} did not settle in ${timeoutMs} ms`);
}

// Uploads that queue nothing: the test indexes when it wants to (no race with the real consumer).
const noQueue = { KB_INGEST: { send: async () => {}, sendBatch: async () => {} } };

/** Uploads a text document and indexes it at once, as the consumer would; returns its id. */
export async function addIndexedDocument(
  adminToken: string,
  document: { title: string; text: string; sourceType: string; tags?: string },
): Promise<string> {
  const res = await upload(
    adminToken,
    { bytes: document.text, name: `${document.title}.txt`, type: "text/plain" },
    { title: document.title, source_type: document.sourceType, ...(document.tags ? { tags: document.tags } : {}) },
    noQueue,
  );
  if (res.status !== 202) throw new Error(`upload failed: ${JSON.stringify(res.body)}`);
  const outcome = await ingestNow(res.body.id);
  if (outcome !== "indexed") throw new Error(`indexing failed: ${outcome}`);
  return res.body.id;
}

/** Upload overrides that keep each ingestion message for the test to deliver itself (nothing reaches the real queue). */
export function capturedQueue() {
  const sent: QueueEnvelope<{ documentId: string; generation: number; requestedAt?: string }>[] = [];
  const bindings = {
    KB_INGEST: {
      send: async (body: (typeof sent)[number]) => {
        sent.push(body);
      },
      sendBatch: async (batch: { body: (typeof sent)[number] }[]) => {
        sent.push(...batch.map((m) => m.body));
      },
    },
  };
  return { sent, bindings };
}

/**
 * The Worker's bindings with Analytics Engine and the dead-letter queue replaced by recorders, so a test counts
 * exactly its own metric events and dead letters (the real consumer may be ingesting other tests' documents).
 */
export function recordingEnv() {
  const points: AnalyticsEngineDataPoint[] = [];
  const deadLetters: unknown[] = [];
  const bindings = {
    ...env,
    ANALYTICS: { writeDataPoint: (point: AnalyticsEngineDataPoint) => points.push(point) },
    KB_INGEST_DLQ: {
      send: async (body: unknown) => {
        deadLetters.push(body);
      },
    },
  } as unknown as Env;
  /** Samples of one metric: label values in catalog order (without the environment column) and value. */
  const samples = (name: string) =>
    points
      .filter((p) => p.blobs?.[0] === name)
      .map((p) => ({ labels: (p.blobs ?? []).slice(2), value: p.doubles?.[0] ?? Number.NaN }));
  return { env: bindings, samples, deadLetters };
}

/** Delivers one message to the Worker's queue consumer as the kb-ingest queue would, on the given attempt. */
export async function deliverIngestion(bindings: Env, body: unknown, attempts = 1) {
  const batch = createMessageBatch(INGEST_QUEUE, [{ id: "m1", timestamp: new Date(), attempts, body }]);
  const ctx = createExecutionContext();
  await consumeQueue(messageHandlers, batch, bindings, ctx);
  return getQueueResult(batch, ctx);
}
