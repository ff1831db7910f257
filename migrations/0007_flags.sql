CREATE TABLE "flag_changes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"version" bigint NOT NULL,
	"subject" text NOT NULL,
	"subject_key" text NOT NULL,
	"action" text NOT NULL,
	"before" jsonb,
	"after" jsonb,
	"actor_id" uuid,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "flag_exposures_daily" (
	"flag_key" text NOT NULL,
	"variant" text NOT NULL,
	"day" date NOT NULL,
	"sampled" bigint DEFAULT 0 NOT NULL,
	"estimated" double precision DEFAULT 0 NOT NULL,
	CONSTRAINT "flag_exposures_daily_flag_key_variant_day_pk" PRIMARY KEY("flag_key","variant","day")
);
--> statement-breakpoint
CREATE TABLE "flag_overrides" (
	"flag_key" text NOT NULL,
	"user_id" text NOT NULL,
	"value" jsonb,
	"variant" text,
	"reason" text NOT NULL,
	"expires_at" timestamp with time zone,
	"set_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "flag_overrides_flag_key_user_id_pk" PRIMARY KEY("flag_key","user_id")
);
--> statement-breakpoint
CREATE TABLE "flag_segments" (
	"id" integer PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"constraints" jsonb NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "flag_state" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"version" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "flags" (
	"key" text PRIMARY KEY NOT NULL,
	"definition" jsonb NOT NULL,
	"archived" boolean DEFAULT false NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_by" uuid
);
--> statement-breakpoint
ALTER TABLE "flag_changes" ADD CONSTRAINT "flag_changes_actor_id_users_id_fk" FOREIGN KEY ("actor_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flag_overrides" ADD CONSTRAINT "flag_overrides_flag_key_flags_key_fk" FOREIGN KEY ("flag_key") REFERENCES "public"."flags"("key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flag_overrides" ADD CONSTRAINT "flag_overrides_set_by_users_id_fk" FOREIGN KEY ("set_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "flags" ADD CONSTRAINT "flags_updated_by_users_id_fk" FOREIGN KEY ("updated_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "flag_changes_subject_idx" ON "flag_changes" USING btree ("subject_key","version");--> statement-breakpoint
CREATE INDEX "flag_changes_version_idx" ON "flag_changes" USING btree ("version");--> statement-breakpoint
CREATE INDEX "flag_overrides_expiry_idx" ON "flag_overrides" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "flags_tags_idx" ON "flags" USING gin (("definition" -> 'tags'));--> statement-breakpoint
INSERT INTO "flag_state" ("id", "version") VALUES (1, 0) ON CONFLICT DO NOTHING;
