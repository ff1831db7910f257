// auth_session_duration_seconds: how long sessions lasted that were ended on purpose (expired ones are not seen).
import type { MetricEvent } from "../metrics/catalog.ts";
import type { EndedSession, RevokeReason } from "./sessions.ts";

/** The metric's `end` label for each stored revoke reason (a user ending one of their sessions is a logout). */
const endLabel: Record<RevokeReason, string> = {
  logout: "logout",
  user_revoked: "logout",
  refresh_reuse: "reuse",
  password_changed: "password_change",
  password_reset: "password_reset",
  deactivated: "deactivated",
  deleted: "deleted",
};

/** One sample per ended session: seconds from its row's creation (sign-in) to `nowMs`. */
export const sessionEndEvents = (ended: readonly EndedSession[], nowMs = Date.now()): MetricEvent[] =>
  ended.map(({ reason, startedAt }) => ({
    name: "auth_session_duration_seconds",
    labels: { end: endLabel[reason] },
    value: Math.max(0, (nowMs - startedAt.getTime()) / 1000),
  }));
