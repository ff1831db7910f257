import { type SQL, sql } from "drizzle-orm";
import { type Database, postgresErrorCode, queryRows } from "../../db/client.ts";
import { assertFits, storedDimensionMismatch } from "./dimensions.ts";
import { type VectorStore, VectorStoreUnavailable } from "./port.ts";

const UNDEFINED_TABLE = "42P01";

// 100 rows of 1536 floats is ~1.5 MB of SQL text: well inside a Neon HTTP request.
const ROWS_PER_STATEMENT = 100;

// pgvector's text form, '[1,2,3]'; JS number formatting (including 1e-7) is what it parses.
const vectorLiteral = (vector: number[]) => `[${vector.join(",")}]`;

/**
 * Vectors in Postgres (kb_vectors, migrations/0003_pgvector.sql), exact cosine search over one index.
 * Rows go with their chunk or document by cascade; the deletes here serve re-indexing and other stores' parity.
 */
export function pgvectorStore(db: Database): VectorStore {
  // Without pgvector there is no kb_vectors table, and so nothing to delete.
  const deleteVectors = async (where: SQL) => {
    try {
      await db.execute(sql`delete from kb_vectors where ${where}`);
    } catch (error) {
      if (postgresErrorCode(error) !== UNDEFINED_TABLE) throw error;
    }
  };

  return {
    backend: "pgvector",

    async ensureIndex(index) {
      const [state] = await queryRows<{ extension: boolean; table: boolean }>(
        db,
        sql`select exists (select 1 from pg_extension where extname = 'vector') as extension,
                   to_regclass('kb_vectors') is not null as "table"`,
      );
      if (!state?.extension || !state.table) {
        throw new VectorStoreUnavailable(
          "pgvector is not available in this database: install the vector extension and run the migrations again, or set QDRANT_URL to use Qdrant.",
        );
      }
      const [stored] = await queryRows<{ dims: number }>(
        db,
        sql`select vector_dims(embedding) as dims from kb_vectors where index_name = ${index.name} limit 1`,
      );
      if (stored && Number(stored.dims) !== index.dimensions) throw storedDimensionMismatch(index, Number(stored.dims));
    },

    async upsert(index, items) {
      assertFits(
        index,
        items.map((item) => item.vector),
      );
      for (let i = 0; i < items.length; i += ROWS_PER_STATEMENT) {
        const rows = items
          .slice(i, i + ROWS_PER_STATEMENT)
          .map(
            (item) =>
              sql`(${item.chunkId}::uuid, ${item.documentId}::uuid, ${index.name}, ${vectorLiteral(item.vector)}::vector)`,
          );
        await db.execute(sql`
          insert into kb_vectors (chunk_id, document_id, index_name, embedding)
          values ${sql.join(rows, sql`, `)}
          on conflict (chunk_id) do update
            set document_id = excluded.document_id, index_name = excluded.index_name, embedding = excluded.embedding`);
      }
    },

    async deleteChunks(index, chunkIds) {
      if (chunkIds.length === 0) return;
      await deleteVectors(sql`index_name = ${index.name} and chunk_id = any(${uuids(chunkIds)})`);
    },

    async deleteDocument(index, documentId) {
      await deleteVectors(sql`index_name = ${index.name} and document_id = ${documentId}`);
    },

    async dropIndex(index) {
      await deleteVectors(sql`index_name = ${index.name}`);
    },

    async query(index, vector, { topK, documentIds }) {
      assertFits(index, [vector]);
      if (topK < 1 || documentIds?.length === 0) return [];
      const target = sql`${vectorLiteral(vector)}::vector`;
      const byDocument = documentIds ? sql`and document_id = any(${uuids(documentIds)})` : sql``;
      const rows = await queryRows<{ chunk_id: string; document_id: string; distance: number | string }>(
        db,
        sql`select chunk_id, document_id, embedding <=> ${target} as distance
            from kb_vectors
            where index_name = ${index.name} ${byDocument}
            order by embedding <=> ${target}
            limit ${Math.floor(topK)}`,
      );
      return rows.map((row) => ({
        chunkId: row.chunk_id,
        documentId: row.document_id,
        score: 1 - Number(row.distance),
      }));
    },
  };
}

/** One uuid[] parameter (drizzle would otherwise expand a JS array into a parenthesised list). */
const uuids = (ids: string[]): SQL => sql`${sql.param(ids)}::uuid[]`;
