ALTER TABLE "llm_usage" ADD COLUMN "feature" text;--> statement-breakpoint
UPDATE "llm_usage" SET "feature" = CASE WHEN "channel" = 'voice' THEN 'voice' ELSE 'answers' END WHERE "feature" IS NULL;--> statement-breakpoint
ALTER TABLE "llm_usage" ALTER COLUMN "feature" SET NOT NULL;--> statement-breakpoint
CREATE INDEX "llm_usage_created_idx" ON "llm_usage" USING btree ("created_at");
