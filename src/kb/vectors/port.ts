import { ApiError } from "../../errors.ts";

/** Which vector index: its name and the model/dimension it was built with. */
export interface IndexSpec {
  name: string;
  model: string;
  dimensions: number;
}

interface VectorItem {
  chunkId: string;
  documentId: string;
  vector: number[];
}

interface VectorHit {
  chunkId: string;
  documentId: string;
  /** Cosine similarity, higher is closer. */
  score: number;
}

/**
 * Where chunk vectors live: pgvector in Postgres by default, Qdrant when QDRANT_URL is set.
 * Hits are raw: callers keep only chunks of each document's active generation (see src/kb).
 */
export interface VectorStore {
  readonly backend: "pgvector" | "qdrant";
  /** Creates what the index needs; safe to call repeatedly. */
  ensureIndex(index: IndexSpec): Promise<void>;
  /** Inserts or replaces by chunk id, so a retried write never duplicates. */
  upsert(index: IndexSpec, items: VectorItem[]): Promise<void>;
  deleteChunks(index: IndexSpec, chunkIds: string[]): Promise<void>;
  deleteDocument(index: IndexSpec, documentId: string): Promise<void>;
  /** Removes every vector of the index (a model switch rebuilds it from scratch). */
  dropIndex(index: IndexSpec): Promise<void>;
  query(index: IndexSpec, vector: number[], options: { topK: number; documentIds?: string[] }): Promise<VectorHit[]>;
}

/** The store is not set up at all (e.g. a Postgres without pgvector): ingestion then indexes keywords only. */
export class VectorStoreUnavailable extends ApiError {
  constructor(detail: string) {
    super("BAD_ENVIRONMENT", detail);
  }
}
