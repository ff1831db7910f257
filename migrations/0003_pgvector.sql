-- pgvector is optional: Neon and PGlite have it; a Postgres server without it keeps the vector store off
-- (health reports vector_store down, QDRANT_URL selects Qdrant instead).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    EXECUTE 'CREATE EXTENSION IF NOT EXISTS vector';
    -- No fixed dimension: each embedding index records its model and dimension (kb_embedding_indexes).
    EXECUTE 'CREATE TABLE IF NOT EXISTS kb_vectors (
      chunk_id uuid PRIMARY KEY REFERENCES kb_chunks(id) ON DELETE CASCADE,
      document_id uuid NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
      index_name text NOT NULL,
      embedding vector NOT NULL
    )';
    EXECUTE 'CREATE INDEX IF NOT EXISTS kb_vectors_document_idx ON kb_vectors (document_id)';
    EXECUTE 'CREATE INDEX IF NOT EXISTS kb_vectors_index_idx ON kb_vectors (index_name)';
  ELSE
    RAISE NOTICE 'pgvector is not available: the pgvector store stays off';
  END IF;
END $$;
