import { env } from "cloudflare:workers";
import { desc, sql } from "drizzle-orm";
import type { NeonQueryResultHKT } from "drizzle-orm/neon-serverless";
import type { PgDatabase } from "drizzle-orm/pg-core";
import type { Config } from "../config.ts";
import { withPoolDb } from "../db/client.ts";
import { auditLog } from "../db/schema/audit.ts";
import type * as schema from "../db/schema/index.ts";
import type { Env } from "../env.ts";
import { inBackground, recordMetrics } from "../metrics/record.ts";
import { currentWorkContext } from "../observability/context.ts";
import { redact } from "../observability/redact.ts";
import { type AuditContent, GENESIS, hashRow } from "./chain.ts";

type ActorType = "user" | "api_key" | "system" | "anonymous";
type AuditOutcome = "success" | "failure" | "denied";

export interface AuditEvent {
  /** Dotted lowercase name, area first: "auth.login", "admin.user.role_changed" (docs/audit.md lists them). */
  action: string;
  outcome?: AuditOutcome;
  /** Defaults to the signed-in user of the current request, else anonymous. */
  actor?: { type: ActorType; id?: string | null };
  target?: { type: string; id?: string | null };
  before?: unknown;
  after?: unknown;
  metadata?: Record<string, unknown>;
}

/** A drizzle database or transaction over the WebSocket Pool (withPoolDb); HTTP cannot hold the lock. */
export type AuditWriter = PgDatabase<NeonQueryResultHKT, typeof schema>;

// Any fixed number: only audit appends take this transaction-scoped advisory lock.
const AUDIT_CHAIN_LOCK = 7_424_101;
const ACTION = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/**
 * Appends one row to the audit chain. Request id, trace id, IP and user agent come from the current
 * work context; before/after/metadata are redacted. Throws when the row cannot be written: an audit
 * row is never silently dropped.
 *
 * Admin writes should pass their own transaction, `recordAudit(config, event, { db: tx })`, so the
 * change and its audit row commit (or roll back) together. The chain lock is then held until that
 * transaction ends, so keep it short, and leave it at READ COMMITTED (the default) so the last row
 * is read after the lock is taken.
 */
export async function recordAudit(
  config: Config,
  event: AuditEvent,
  options: { db?: AuditWriter } = {},
): Promise<void> {
  const draft = draftRow(event);
  if (options.db) await append(options.db, draft);
  else await withPoolDb(config, (db) => append(db, draft));
  // After the append, in the background (the caller is not held up by the aggregator). In a caller's
  // transaction the row commits with it: a rolled-back transaction has still been counted.
  await recordMetrics(env as unknown as Env, inBackground, {
    name: "audit_events_total",
    labels: { action: draft.action, outcome: draft.outcome },
    value: 1,
  });
}

type Draft = Omit<AuditContent, "seq" | "occurredAt">;

function draftRow(event: AuditEvent): Draft {
  if (!ACTION.test(event.action)) {
    throw new Error(`audit action ${JSON.stringify(event.action)} must be dotted lowercase, like "auth.login"`);
  }
  const context = currentWorkContext();
  const actor =
    event.actor ?? (context?.userId ? { type: "user" as const, id: context.userId } : { type: "anonymous" as const });
  return {
    id: crypto.randomUUID(),
    actorType: actor.type,
    actorId: actor.id ?? null,
    action: event.action,
    outcome: event.outcome ?? "success",
    targetType: event.target?.type ?? null,
    targetId: event.target?.id ?? null,
    requestId: context?.requestId ?? null,
    traceId: context?.trace.traceId ?? null,
    ip: context?.ip ?? null,
    userAgent: context?.userAgent ?? null,
    before: storedJson(event.before),
    after: storedJson(event.after),
    metadata: storedJson(event.metadata ?? {}),
  };
}

/** Redacted, and exactly what jsonb gives back (no undefined, Dates as strings), so the hash verifies later. */
function storedJson(value: unknown): unknown {
  const text = JSON.stringify(redact(value));
  return text === undefined ? null : JSON.parse(text);
}

// The lock serialises appends, so two writers never read the same last row and fork the chain
// (the unique seq index would refuse the second one anyway).
async function append(db: AuditWriter, draft: Draft): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`);
    const [last] = await tx
      .select({ seq: auditLog.seq, hash: auditLog.hash })
      .from(auditLog)
      .orderBy(desc(auditLog.seq))
      .limit(1);
    const previous = last ?? GENESIS;
    // Stamped under the lock, so time order follows seq order; milliseconds, as the hash needs them back.
    const content: AuditContent = { ...draft, seq: previous.seq + 1, occurredAt: new Date() };
    const hash = await hashRow(previous.hash, content);
    await tx.insert(auditLog).values({ ...content, prevHash: previous.hash, hash });
  });
}
