import type { Config } from "../../config.ts";
import { createDb, type Database } from "../../db/client.ts";
import { pgvectorStore } from "./pgvector.ts";
import type { VectorStore } from "./port.ts";
import { qdrantStore } from "./qdrant.ts";

/** Qdrant when QDRANT_URL is set, else pgvector in the app's own Postgres. */
export function createVectorStore(config: Config, db?: Database): VectorStore {
  return config.QDRANT_URL ? qdrantStore(config) : pgvectorStore(db ?? createDb(config));
}
