import { count, eq, inArray } from "drizzle-orm";
import { sha256Hex } from "../auth/crypto.ts";
import type { Config } from "../config.ts";
import { createDb } from "../db/client.ts";
import { type DocumentStatus, documents, importBatches } from "../db/schema/kb.ts";
import type { Env } from "../env.ts";
import { log } from "../observability/log.ts";
import { queueIngestions } from "./ingest.ts";

// Bulk import of text documents (JSON Lines records) and the progress of each import batch.

export interface ImportRecord {
  external_id: string;
  title: string;
  text: string;
  source_type?: string | undefined;
  tags?: string[] | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface ImportSummary {
  batch_id: string;
  received: number;
  queued: number;
  duplicates: number;
  rejected: number;
  errors: { line: number; message: string }[];
}

const IMPORT_SOURCE = "import";

/**
 * Bulk import: each valid record becomes a text document (R2 + row), queued in batches of 100 messages.
 * Records whose text is already stored are counted as duplicates; invalid lines were rejected by the caller.
 */
export async function importDocuments(
  env: Env,
  config: Config,
  records: ImportRecord[],
  rejected: { line: number; message: string }[],
  createdBy: string,
): Promise<ImportSummary> {
  const db = createDb(config);
  const batchId = crypto.randomUUID();
  const encoder = new TextEncoder();
  const prepared = await Promise.all(
    records.map(async (r) => {
      const bytes = encoder.encode(r.text);
      return { record: r, bytes, digest: await sha256Hex(bytes), id: crypto.randomUUID() };
    }),
  );
  const known = new Set<string>();
  for (let i = 0; i < prepared.length; i += 500) {
    const digests = prepared.slice(i, i + 500).map((p) => p.digest);
    const rows = await db
      .select({ sha256: documents.sha256 })
      .from(documents)
      .where(inArray(documents.sha256, digests));
    for (const row of rows) known.add(row.sha256);
  }
  const fresh = prepared.filter((p) => {
    if (known.has(p.digest)) return false;
    known.add(p.digest); // the same text twice in one import is one document
    return true;
  });
  const inserted: typeof fresh = [];
  for (let i = 0; i < fresh.length; i += 500) {
    const slice = fresh.slice(i, i + 500);
    const rows = await db
      .insert(documents)
      .values(
        slice.map((p) => ({
          id: p.id,
          title: p.record.title,
          sourceType: p.record.source_type ?? IMPORT_SOURCE,
          externalId: p.record.external_id,
          tags: p.record.tags ?? [],
          metadata: p.record.metadata ?? {},
          mimeType: "text/plain; charset=utf-8",
          byteSize: p.bytes.byteLength,
          sha256: p.digest,
          r2Key: `documents/${p.id}`,
          batchId,
          createdBy,
        })),
      )
      .onConflictDoNothing()
      .returning({ id: documents.id });
    const ids = new Set(rows.map((r) => r.id));
    inserted.push(...slice.filter((p) => ids.has(p.id)));
  }
  for (const p of inserted) {
    await env.DOCUMENTS.put(`documents/${p.id}`, p.bytes, {
      httpMetadata: { contentType: "text/plain; charset=utf-8" },
    });
  }
  await queueIngestions(
    env,
    inserted.map((p) => ({ documentId: p.id, generation: 1 })),
  );
  const summary = {
    received: records.length + rejected.length,
    queued: inserted.length,
    duplicates: records.length - inserted.length,
    rejected: rejected.length,
  };
  await db.insert(importBatches).values({ id: batchId, createdBy, ...summary, errors: rejected.slice(0, 100) });
  log("info", "kb import accepted", { batch_id: batchId, ...summary });
  return { batch_id: batchId, ...summary, errors: rejected.slice(0, 100) };
}

/** Counts of an import batch's documents by status; undefined for an unknown batch. */
export async function batchProgress(config: Config, batchId: string) {
  const db = createDb(config);
  const [batch] = await db.select().from(importBatches).where(eq(importBatches.id, batchId));
  if (!batch) return undefined;
  const rows = await db
    .select({ status: documents.status, n: count() })
    .from(documents)
    .where(eq(documents.batchId, batchId))
    .groupBy(documents.status);
  const byStatus: Record<DocumentStatus, number> = { queued: 0, processing: 0, ready: 0, failed: 0 };
  for (const r of rows) byStatus[r.status] = r.n;
  const finished = byStatus.ready + byStatus.failed;
  return {
    batch_id: batch.id,
    created_at: batch.createdAt.toISOString(),
    received: batch.received,
    queued: batch.queued,
    duplicates: batch.duplicates,
    rejected: batch.rejected,
    errors: batch.errors as { line: number; message: string }[],
    status: byStatus,
    done: finished >= batch.queued,
    percent: batch.queued ? Math.round((100 * finished) / batch.queued) : 100,
  };
}
