// The audit hash chain, pure: hash(row) = SHA-256(prev_hash + "\n" + canonical content), so editing,
// reordering or deleting a stored row breaks the link at that row or the one after it.

import { sha256Hex } from "../auth/crypto.ts";
import { canonicalJson } from "../json.ts";

export const GENESIS_HASH = "0".repeat(64);

/** Everything a row's hash covers: every column except prev_hash and hash themselves. */
export interface AuditContent {
  id: string;
  seq: number;
  occurredAt: Date;
  actorType: string;
  actorId: string | null;
  action: string;
  outcome: string;
  targetType: string | null;
  targetId: string | null;
  requestId: string | null;
  traceId: string | null;
  ip: string | null;
  userAgent: string | null;
  before: unknown;
  after: unknown;
  metadata: unknown;
}

export interface ChainRow extends AuditContent {
  prevHash: string;
  hash: string;
}

/** The last verified link: where the next row must continue from. */
interface ChainLink {
  seq: number;
  hash: string;
}

export const GENESIS: ChainLink = { seq: 0, hash: GENESIS_HASH };

type BrokenReason = "hash mismatch" | "prev_hash does not match the previous row" | "gap in seq (row deleted?)";

export interface BrokenLink {
  seq: number;
  id: string;
  reason: BrokenReason;
}

type ChainVerdict = { ok: true; checked: number; last: ChainLink } | { ok: false; checked: number; broken: BrokenLink };

/** A row's content on the wire: snake_case, times as ISO 8601 UTC (millisecond precision, as stored). */
export const contentJson = (row: AuditContent) => ({
  id: row.id,
  seq: row.seq,
  occurred_at: row.occurredAt.toISOString(),
  actor_type: row.actorType,
  actor_id: row.actorId,
  action: row.action,
  outcome: row.outcome,
  target_type: row.targetType,
  target_id: row.targetId,
  request_id: row.requestId,
  trace_id: row.traceId,
  ip: row.ip,
  user_agent: row.userAgent,
  before: row.before,
  after: row.after,
  metadata: row.metadata,
});

/** The row's content as one stable string: what its hash covers. */
export const canonicalContent = (row: AuditContent): string => canonicalJson(contentJson(row));

export const hashRow = (prevHash: string, content: AuditContent): Promise<string> =>
  sha256Hex(`${prevHash}\n${canonicalContent(content)}`);

/**
 * Checks rows given in seq order, continuing from `from` (the genesis, or the last link of the
 * previous page), and stops at the first broken link.
 */
export async function verifyChain(rows: readonly ChainRow[], from: ChainLink = GENESIS): Promise<ChainVerdict> {
  let last = from;
  let checked = 0;
  for (const row of rows) {
    checked++;
    const reason = await linkProblem(row, last);
    if (reason) return { ok: false, checked, broken: { seq: row.seq, id: row.id, reason } };
    last = { seq: row.seq, hash: row.hash };
  }
  return { ok: true, checked, last };
}

async function linkProblem(row: ChainRow, previous: ChainLink): Promise<BrokenReason | undefined> {
  if (row.seq !== previous.seq + 1) return "gap in seq (row deleted?)";
  if (row.prevHash !== previous.hash) return "prev_hash does not match the previous row";
  if ((await hashRow(row.prevHash, row)) !== row.hash) return "hash mismatch";
  return undefined;
}
