CREATE TABLE "kb_chunks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"document_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"chunk_index" integer NOT NULL,
	"text" text NOT NULL,
	"char_start" integer NOT NULL,
	"char_end" integer NOT NULL,
	"page" integer,
	"heading_path" text[] DEFAULT '{}'::text[] NOT NULL,
	"token_count" integer NOT NULL,
	"term_count" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "kb_documents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"external_id" text,
	"source_type" text DEFAULT 'upload' NOT NULL,
	"title" text NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"mime_type" text NOT NULL,
	"byte_size" integer NOT NULL,
	"sha256" text NOT NULL,
	"r2_key" text NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"stage" text,
	"progress" integer DEFAULT 0 NOT NULL,
	"chunks_done" integer DEFAULT 0 NOT NULL,
	"chunk_count" integer DEFAULT 0 NOT NULL,
	"token_count" integer DEFAULT 0 NOT NULL,
	"error" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"embedding_model" text,
	"embedding_dimensions" integer,
	"active_generation" integer DEFAULT 0 NOT NULL,
	"timings" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"batch_id" uuid,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"indexed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "kb_embedding_indexes" (
	"name" text PRIMARY KEY NOT NULL,
	"model" text NOT NULL,
	"dimensions" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "kb_import_batches" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"created_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"received" integer NOT NULL,
	"queued" integer NOT NULL,
	"duplicates" integer NOT NULL,
	"rejected" integer NOT NULL,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "kb_postings" (
	"term" text NOT NULL,
	"chunk_id" uuid NOT NULL,
	"tf" real NOT NULL,
	CONSTRAINT "kb_postings_term_chunk_id_pk" PRIMARY KEY("term","chunk_id")
);
--> statement-breakpoint
ALTER TABLE "kb_chunks" ADD CONSTRAINT "kb_chunks_document_id_kb_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."kb_documents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "kb_postings" ADD CONSTRAINT "kb_postings_chunk_id_kb_chunks_id_fk" FOREIGN KEY ("chunk_id") REFERENCES "public"."kb_chunks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "kb_chunks_position_key" ON "kb_chunks" USING btree ("document_id","generation","chunk_index");--> statement-breakpoint
CREATE INDEX "kb_chunks_document_idx" ON "kb_chunks" USING btree ("document_id","generation");--> statement-breakpoint
CREATE UNIQUE INDEX "kb_documents_sha256_key" ON "kb_documents" USING btree ("sha256");--> statement-breakpoint
CREATE UNIQUE INDEX "kb_documents_external_key" ON "kb_documents" USING btree ("source_type","external_id") WHERE external_id is not null;--> statement-breakpoint
CREATE INDEX "kb_documents_status_idx" ON "kb_documents" USING btree ("status");--> statement-breakpoint
CREATE INDEX "kb_documents_batch_idx" ON "kb_documents" USING btree ("batch_id");--> statement-breakpoint
CREATE INDEX "kb_documents_created_idx" ON "kb_documents" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "kb_postings_chunk_idx" ON "kb_postings" USING btree ("chunk_id");