import { and, inArray, lt } from "drizzle-orm";
import { createDb } from "../adapters/db/client.ts";
import { documents } from "../adapters/db/schema/kb.ts";
import { type Env, requireConfig } from "../env.ts";
import { log } from "../observability/log.ts";
import { envelope } from "../observability/outbound.ts";
import { INGEST_MESSAGE } from "./ingest.ts";

// Longer than any healthy backlog wait plus an ingestion: only a lost message leaves a document this still.
export const STUCK_AFTER_MINUTES = 30;
const SEND_BATCH = 100;

/**
 * Every 5 minutes: documents queued or processing with no progress for STUCK_AFTER_MINUTES lost their
 * message (e.g. a local queue reset); queue their next generation again. Ingestion is idempotent, so a
 * message that was merely slow costs only a no-op.
 */
export async function requeueStuckDocuments(env: Env): Promise<number> {
  const cutoff = new Date(Date.now() - STUCK_AFTER_MINUTES * 60_000);
  const stuck = await createDb(requireConfig(env))
    .update(documents)
    .set({ status: "queued", updatedAt: new Date() })
    .where(and(inArray(documents.status, ["queued", "processing"]), lt(documents.updatedAt, cutoff)))
    .returning({ id: documents.id, generation: documents.activeGeneration });
  for (let i = 0; i < stuck.length; i += SEND_BATCH) {
    await env.KB_INGEST.sendBatch(
      stuck.slice(i, i + SEND_BATCH).map((d) => ({
        body: envelope(INGEST_MESSAGE, { documentId: d.id, generation: d.generation + 1 }),
        contentType: "json" as const,
      })),
    );
  }
  if (stuck.length) log("warn", "stuck documents queued again", { count: stuck.length });
  return stuck.length;
}
