// The Postgres copy of alert history: the AlertManager keeps events until they are written here, so a
// database outage delays the copy and loses nothing (up to the object's bound, see alerts.ts).
import type { Database } from "../db/client.ts";
import { alertEvents } from "../db/schema/ops.ts";
import type { AlertEvent } from "./alerts.ts";

/** Writes events (again, harmlessly: ids are the primary key); returns the ids now stored. */
export async function storeAlertEvents(db: Database, events: readonly AlertEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  await db
    .insert(alertEvents)
    .values(
      events.map((e) => ({
        id: e.id,
        alertId: e.alertId,
        slo: e.slo,
        severity: e.severity,
        event: e.event,
        occurredAt: new Date(e.at),
        details: e.details,
      })),
    )
    .onConflictDoNothing();
  return events.map((e) => e.id);
}
