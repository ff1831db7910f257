import { count, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { type DocumentStatus, documentStatuses, documents } from "../db/schema/kb.ts";

/** What the knowledge base holds: documents by status (every status, 0 when none) and the chunks searches see. */
export interface DocumentCensus {
  documents: Record<DocumentStatus, number>;
  chunks: number;
}

/**
 * One grouped read of kb_documents. Chunks are summed from each document's chunk_count (its active
 * generation, set by the flip), so a generation being written is not counted and kb_chunks is never scanned.
 */
export async function documentCensus(db: Database): Promise<DocumentCensus> {
  const rows = await db
    .select({
      status: documents.status,
      documents: count(),
      chunks: sql<number>`coalesce(sum(${documents.chunkCount}), 0)`.mapWith(Number),
    })
    .from(documents)
    .groupBy(documents.status);
  const census: DocumentCensus = {
    documents: Object.fromEntries(documentStatuses.map((status) => [status, 0])) as Record<DocumentStatus, number>,
    chunks: 0,
  };
  for (const row of rows) {
    census.documents[row.status] = row.documents;
    census.chunks += row.chunks;
  }
  return census;
}
