import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

/**
 * Append-only trail of who did what. Rows form a hash chain in `seq` order: `hash` covers the row's
 * content and `prev_hash`, so an edited or deleted row breaks the chain (see src/audit/chain.ts).
 */
export const auditLog = pgTable(
  "audit_log",
  {
    id: uuid("id").primaryKey().default(sql`gen_random_uuid()`),
    seq: bigint("seq", { mode: "number" }).notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull().defaultNow(),
    actorType: text("actor_type").notNull(), // user | api_key | system | anonymous
    actorId: text("actor_id"),
    action: text("action").notNull(), // e.g. auth.login, admin.user.role_changed
    outcome: text("outcome").notNull().default("success"), // success | failure | denied
    targetType: text("target_type"),
    targetId: text("target_id"),
    requestId: text("request_id"),
    traceId: text("trace_id"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    before: jsonb("before"),
    after: jsonb("after"),
    metadata: jsonb("metadata").notNull().default(sql`'{}'::jsonb`),
    prevHash: text("prev_hash").notNull(),
    hash: text("hash").notNull(),
  },
  (t) => [
    uniqueIndex("audit_log_seq_key").on(t.seq),
    index("audit_log_occurred_at_idx").on(t.occurredAt),
    index("audit_log_target_idx").on(t.targetType, t.targetId),
    index("audit_log_actor_idx").on(t.actorType, t.actorId),
    index("audit_log_action_idx").on(t.action),
  ],
);
