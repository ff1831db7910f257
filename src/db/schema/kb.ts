import { sql } from "drizzle-orm";
import {
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  real,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

export const documentStatuses = ["queued", "processing", "ready", "failed"] as const;
export type DocumentStatus = (typeof documentStatuses)[number];

/** Where a title came from: given (by the admin or the import), the file name, or the document itself. */
export const titleSources = ["given", "file_name", "document"] as const;
export type TitleSource = (typeof titleSources)[number];

/** One source document; its chunks of the active generation are what retrieval sees. */
export const documents = pgTable(
  "kb_documents",
  {
    id: uuid("id").primaryKey().default(sql`gen_random_uuid()`),
    externalId: text("external_id"),
    sourceType: text("source_type").notNull().default("upload"),
    title: text("title").notNull(),
    // A file-name title is replaced by the document's own once extraction finds one; a given one never is.
    titleSource: text("title_source", { enum: titleSources }).notNull().default("given"),
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
    metadata: jsonb("metadata").notNull().default(sql`'{}'::jsonb`),
    mimeType: text("mime_type").notNull(),
    byteSize: integer("byte_size").notNull(),
    sha256: text("sha256").notNull(),
    r2Key: text("r2_key").notNull(),
    status: text("status", { enum: documentStatuses }).notNull().default("queued"),
    stage: text("stage"), // extract | chunk | embed | write | done
    progress: integer("progress").notNull().default(0), // percent
    chunksDone: integer("chunks_done").notNull().default(0),
    chunkCount: integer("chunk_count").notNull().default(0),
    tokenCount: integer("token_count").notNull().default(0),
    error: text("error"),
    attempts: integer("attempts").notNull().default(0),
    embeddingModel: text("embedding_model"),
    embeddingDimensions: integer("embedding_dimensions"),
    // Chunks are written under a new generation and made visible by one update of this column.
    activeGeneration: integer("active_generation").notNull().default(0),
    timings: jsonb("timings").notNull().default(sql`'{}'::jsonb`), // ms per stage
    batchId: uuid("batch_id"),
    createdBy: uuid("created_by"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    indexedAt: timestamp("indexed_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("kb_documents_sha256_key").on(t.sha256),
    uniqueIndex("kb_documents_external_key").on(t.sourceType, t.externalId).where(sql`external_id is not null`),
    index("kb_documents_status_idx").on(t.status),
    index("kb_documents_batch_idx").on(t.batchId),
    index("kb_documents_created_idx").on(t.createdAt),
  ],
);

/** A passage of a document, with where it came from (offsets, page, heading path). */
export const chunks = pgTable(
  "kb_chunks",
  {
    id: uuid("id").primaryKey(),
    documentId: uuid("document_id")
      .notNull()
      .references(() => documents.id, { onDelete: "cascade" }),
    generation: integer("generation").notNull(),
    chunkIndex: integer("chunk_index").notNull(),
    text: text("text").notNull(),
    charStart: integer("char_start").notNull(),
    charEnd: integer("char_end").notNull(),
    page: integer("page"),
    headingPath: text("heading_path").array().notNull().default(sql`'{}'::text[]`),
    tokenCount: integer("token_count").notNull(),
    // Number of indexed terms (after stemming and stopwords): the document length of BM25.
    termCount: integer("term_count").notNull(),
  },
  (t) => [
    uniqueIndex("kb_chunks_position_key").on(t.documentId, t.generation, t.chunkIndex),
    index("kb_chunks_document_idx").on(t.documentId, t.generation),
  ],
);

/** The keyword index: term frequencies per chunk, for BM25 scoring. */
export const postings = pgTable(
  "kb_postings",
  {
    term: text("term").notNull(),
    chunkId: uuid("chunk_id")
      .notNull()
      .references(() => chunks.id, { onDelete: "cascade" }),
    tf: real("tf").notNull(),
  },
  (t) => [primaryKey({ columns: [t.term, t.chunkId] }), index("kb_postings_chunk_idx").on(t.chunkId)],
);

/** The embedding model the vector index is built with; queries must embed with the same one. */
export const embeddingIndexes = pgTable("kb_embedding_indexes", {
  name: text("name").primaryKey(),
  model: text("model").notNull(),
  dimensions: integer("dimensions").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** A bulk import: counts at submission; progress is read from its documents. */
export const importBatches = pgTable("kb_import_batches", {
  id: uuid("id").primaryKey().default(sql`gen_random_uuid()`),
  createdBy: uuid("created_by"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  received: integer("received").notNull(),
  queued: integer("queued").notNull(),
  duplicates: integer("duplicates").notNull(),
  rejected: integer("rejected").notNull(),
  errors: jsonb("errors").notNull().default(sql`'[]'::jsonb`), // first line errors
});

/** One row: the knowledge base's version, bumped whenever what retrieval can see changes. */
export const kbState = pgTable("kb_state", {
  id: integer("id").primaryKey().default(1),
  version: integer("version").notNull().default(0),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});
