CREATE TABLE "kb_state" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"version" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
INSERT INTO "kb_state" ("id", "version") VALUES (1, 0) ON CONFLICT DO NOTHING;
