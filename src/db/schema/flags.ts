import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import type { Constraint, FlagDefinition, JsonValue } from "../../flags/model.ts";
import { users } from "./identity.ts";

/** One row: the rule-set version. Every flag write locks it, bumps it and writes its change under it. */
export const flagState = pgTable("flag_state", {
  id: smallint("id").primaryKey().default(1),
  version: bigint("version", { mode: "number" }).notNull().default(0),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** A flag: key, archive state and its own version as columns; everything else as one JSON definition. */
export const flags = pgTable(
  "flags",
  {
    key: text("key").primaryKey(),
    definition: jsonb("definition").$type<FlagDefinition>().notNull(),
    archived: boolean("archived").notNull().default(false),
    version: integer("version").notNull().default(1),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    updatedBy: uuid("updated_by").references(() => users.id, { onDelete: "set null" }),
  },
  (t) => [index("flags_tags_idx").using("gin", sql`(${t.definition} -> 'tags')`)],
);

/** Reusable constraint sets, referenced by id from strategies (Unleash segments). */
export const flagSegments = pgTable("flag_segments", {
  id: integer("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description"),
  constraints: jsonb("constraints").$type<Constraint[]>().notNull(),
  version: integer("version").notNull().default(1),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Per-user overrides; an active one wins over every rule of the flag. */
export const flagOverrides = pgTable(
  "flag_overrides",
  {
    flagKey: text("flag_key")
      .notNull()
      .references(() => flags.key, { onDelete: "cascade" }),
    userId: text("user_id").notNull(),
    value: jsonb("value").$type<JsonValue>(),
    variant: text("variant"),
    reason: text("reason").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    setBy: uuid("set_by").references(() => users.id, { onDelete: "set null" }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.flagKey, t.userId] }), index("flag_overrides_expiry_idx").on(t.expiresAt)],
);

/** Every change, under the rule-set version it produced: the history, the diff and the stream's replay log. */
export const flagChanges = pgTable(
  "flag_changes",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    version: bigint("version", { mode: "number" }).notNull(),
    subject: text("subject").notNull(), // "flag" | "segment" | "override" | "ruleset"
    subjectKey: text("subject_key").notNull(),
    action: text("action").notNull(),
    before: jsonb("before"),
    after: jsonb("after"),
    actorId: uuid("actor_id").references(() => users.id, { onDelete: "set null" }),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("flag_changes_subject_idx").on(t.subjectKey, t.version),
    index("flag_changes_version_idx").on(t.version),
  ],
);

/** Exposures per flag, variant and UTC day (sampled events, and the estimate they stand for). */
export const flagExposuresDaily = pgTable(
  "flag_exposures_daily",
  {
    flagKey: text("flag_key").notNull(),
    variant: text("variant").notNull(),
    day: date("day").notNull(),
    sampled: bigint("sampled", { mode: "number" }).notNull().default(0),
    estimated: doublePrecision("estimated").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.flagKey, t.variant, t.day] })],
);
