import { and, inArray, lt } from "drizzle-orm";
import { createDb } from "../db/client.ts";
import { documents } from "../db/schema/kb.ts";
import { type Env, requireConfig } from "../env.ts";
import { log } from "../observability/log.ts";
import { queueIngestions } from "./ingest.ts";

// Longer than any healthy backlog wait plus an ingestion: only a lost message leaves a document this still.
const STUCK_AFTER_MINUTES = 30;

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
  await queueIngestions(
    env,
    stuck.map((d) => ({ documentId: d.id, generation: d.generation + 1 })),
  );
  if (stuck.length) log("warn", "stuck documents queued again", { count: stuck.length });
  return stuck.length;
}
