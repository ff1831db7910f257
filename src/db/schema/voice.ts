import { sql } from "drizzle-orm";
import { doublePrecision, index, integer, pgTable, real, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { conversations } from "./conversations.ts";
import { users } from "./identity.ts";

const voiceModes = ["local", "upstream"] as const;
const voiceSessionStatuses = ["created", "active", "ended"] as const;

/** One realtime voice session: who, where its turns are stored, and what it used. */
export const voiceSessions = pgTable(
  "voice_sessions",
  {
    id: uuid("id").primaryKey().default(sql`gen_random_uuid()`),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    conversationId: uuid("conversation_id").references(() => conversations.id, { onDelete: "set null" }),
    mode: text("mode", { enum: voiceModes }).notNull(),
    model: text("model").notNull(),
    status: text("status", { enum: voiceSessionStatuses }).notNull().default("created"),
    endedReason: text("ended_reason"),
    audioInMs: integer("audio_in_ms").notNull().default(0),
    audioOutMs: integer("audio_out_ms").notNull().default(0),
    inputTokens: integer("input_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    costUsd: doublePrecision("cost_usd").notNull().default(0),
    turns: integer("turns").notNull().default(0),
    bargeIns: integer("barge_ins").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    endedAt: timestamp("ended_at", { withTimezone: true }),
  },
  (t) => [index("voice_sessions_user_idx").on(t.userId, t.createdAt)],
);

/** Per-user voice settings, applied to every new session. */
export const voicePreferences = pgTable("voice_preferences", {
  userId: uuid("user_id")
    .primaryKey()
    .references(() => users.id, { onDelete: "cascade" }),
  voice: text("voice").notNull().default("marin"),
  speed: real("speed").notNull().default(1),
  language: text("language").notNull().default("en"),
  // 0 (only loud, close speech) to 1 (picks up quiet speech); maps to server_vad's threshold.
  vadSensitivity: real("vad_sensitivity").notNull().default(0.5),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});
