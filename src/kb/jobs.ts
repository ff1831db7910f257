import { sql } from "drizzle-orm";
import { createDb, queryRows } from "../db/client.ts";
import { documentStatuses } from "../db/schema/kb.ts";
import { type Env, requireConfig } from "../env.ts";
import { recordMetrics } from "../metrics/record.ts";
import { log } from "../observability/log.ts";
import { documentCensus } from "./census.ts";
import { queueIngestions } from "./ingest.ts";

/**
 * Every 5 minutes: documents queued or processing with no progress for KB_REQUEUE_STUCK_AFTER_MINUTES (30 by default) lost their
 * message (e.g. a local queue reset); queue their next generation again. Ingestion is idempotent, so a
 * message that was merely slow costs only a no-op. The new message keeps the document's last change as its
 * request time (the request itself when the lost message never started), so its ready time is not reset.
 */
export async function requeueStuckDocuments(env: Env): Promise<number> {
  const config = requireConfig(env);
  const cutoff = new Date(Date.now() - config.KB_REQUEUE_STUCK_AFTER_MINUTES * 60_000);
  const stuck = await queryRows<{ id: string; generation: number; last_change_ms: number }>(
    createDb(config),
    sql`with stuck as (
        select id, updated_at from kb_documents
        where status in ('queued', 'processing') and updated_at < ${cutoff.toISOString()}::timestamptz
        for update
      )
      update kb_documents d set status = 'queued', updated_at = now()
      from stuck where d.id = stuck.id
      returning d.id, d.active_generation as generation,
        (extract(epoch from stuck.updated_at) * 1000)::float8 as last_change_ms`,
  );
  await queueIngestions(
    env,
    stuck.map((d) => ({
      documentId: d.id,
      generation: Number(d.generation) + 1,
      requestedAt: new Date(Number(d.last_change_ms)).toISOString(),
    })),
  );
  if (stuck.length) log("warn", "stuck documents queued again", { count: stuck.length });
  return stuck.length;
}

/** Every 5 minutes: documents by status (a sample for every status, 0 included) and chunks, as gauges. */
export async function recordKbGauges(env: Env): Promise<void> {
  const census = await documentCensus(createDb(requireConfig(env)));
  await recordMetrics(
    env,
    undefined,
    ...documentStatuses.map((status) => ({
      name: "kb_documents" as const,
      labels: { status },
      value: census.documents[status],
    })),
    { name: "kb_chunks", labels: {}, value: census.chunks },
  );
}
