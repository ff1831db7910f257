import { index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * A copy of every alert event (fired, notified, acknowledged, escalated, resolved), written from the
 * AlertManager object's outbox when Postgres answers: the history for reports. The object keeps the live state.
 */
export const alertEvents = pgTable(
  "alert_events",
  {
    id: uuid("id").primaryKey(),
    alertId: uuid("alert_id").notNull(),
    slo: text("slo").notNull(),
    severity: text("severity").notNull(), // page | ticket
    event: text("event").notNull(), // fired | notified | acknowledged | escalated | resolved
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull(),
    details: jsonb("details").notNull(),
  },
  (t) => [index("alert_events_alert_idx").on(t.alertId), index("alert_events_time_idx").on(t.occurredAt)],
);
