import { eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { embeddingIndexes } from "../db/schema/kb.ts";
import { ApiError } from "../errors.ts";
import type { Embedder } from "./embed/port.ts";
import type { IndexSpec } from "./vectors/port.ts";

export const DEFAULT_INDEX = "default";

/**
 * The index's recorded model and dimension. The first ingestion records the embedder's; afterwards an
 * embedder with another model is refused (409), so an index is never mixed: switching models is a reindex.
 */
export async function indexFor(db: Database, embedder: Embedder): Promise<IndexSpec> {
  await db
    .insert(embeddingIndexes)
    .values({ name: DEFAULT_INDEX, model: embedder.model, dimensions: embedder.dimensions })
    .onConflictDoNothing();
  const [index] = await db.select().from(embeddingIndexes).where(eq(embeddingIndexes.name, DEFAULT_INDEX));
  if (!index) throw new Error("embedding index row missing");
  if (index.model !== embedder.model || index.dimensions !== embedder.dimensions) {
    throw new ApiError(
      "CONFLICT",
      `The vector index was built with ${index.model} (${index.dimensions} dimensions) but the configured embedder is ${embedder.model} (${embedder.dimensions}); rebuild the index (POST /api/admin/kb/index/rebuild) to switch models.`,
    );
  }
  return { name: index.name, model: index.model, dimensions: index.dimensions };
}

/** The recorded index, for queries: they must embed with its model. Undefined before any ingestion. */
export async function recordedIndex(db: Database): Promise<IndexSpec | undefined> {
  const [index] = await db.select().from(embeddingIndexes).where(eq(embeddingIndexes.name, DEFAULT_INDEX));
  return index ? { name: index.name, model: index.model, dimensions: index.dimensions } : undefined;
}
