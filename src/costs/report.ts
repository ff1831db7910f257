import { type SQL, sql } from "drizzle-orm";
import { csvLine } from "../audit/query.ts";
import { type Database, queryRows } from "../db/client.ts";
import { fieldError } from "../errors.ts";

export const COST_GROUPINGS = ["user", "model", "feature", "day", "conversation"] as const;
export type CostGrouping = (typeof COST_GROUPINGS)[number];

/** The columns naming a group, per grouping (the wire and CSV names). */
export const GROUP_COLUMNS = {
  user: ["user_id", "email"],
  model: ["model"],
  feature: ["feature"],
  day: ["day"],
  conversation: ["conversation_id"],
} as const satisfies Record<CostGrouping, readonly string[]>;

const TOTAL_COLUMNS = ["calls", "prompt_tokens", "completion_tokens", "cost_usd"] as const;

/** One group's spend; its naming columns (GROUP_COLUMNS) are null for calls nobody in particular made. */
export type CostGroup = Record<string, string | number | null> & {
  calls: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
};

const groupKeys: Record<CostGrouping, SQL> = {
  user: sql`u.user_id::text as user_id, min(users.email) as email`,
  model: sql`u.model`,
  feature: sql`u.feature`,
  day: sql`to_char(u.created_at at time zone 'UTC', 'YYYY-MM-DD') as day`,
  conversation: sql`u.conversation_id::text as conversation_id`,
};

const groupBy: Record<CostGrouping, SQL> = {
  user: sql`u.user_id`,
  model: sql`u.model`,
  feature: sql`u.feature`,
  day: sql`1`,
  conversation: sql`u.conversation_id`,
};

/**
 * Spend in [from, to) from llm_usage, one row per group: days in order, the rest costliest first.
 * Reads the range through llm_usage_created_idx.
 */
export async function costsBy(db: Database, grouping: CostGrouping, from: Date, to: Date): Promise<CostGroup[]> {
  const rows = await queryRows<Record<string, unknown>>(
    db,
    sql`select ${groupKeys[grouping]},
               count(*)::int as calls,
               coalesce(sum(u.prompt_tokens), 0)::bigint as prompt_tokens,
               coalesce(sum(u.completion_tokens), 0)::bigint as completion_tokens,
               coalesce(sum(u.cost_usd), 0)::float8 as cost_usd
          from llm_usage u
          ${grouping === "user" ? sql`left join users on users.id = u.user_id` : sql``}
         where u.created_at >= ${from.toISOString()} and u.created_at < ${to.toISOString()}
         group by ${groupBy[grouping]}
         order by ${grouping === "day" ? sql`1` : sql`cost_usd desc, 1`}`,
  );
  return rows.map((row) => {
    const group: Record<string, string | number | null> = {};
    for (const column of GROUP_COLUMNS[grouping]) group[column] = (row[column] as string | null) ?? null;
    for (const column of TOTAL_COLUMNS) group[column] = Number(row[column] ?? 0);
    return group as CostGroup;
  });
}

/** The groups as RFC 4180 CSV: a header row, then one line per group. */
export function costsCsv(grouping: CostGrouping, groups: readonly CostGroup[]): string {
  const columns = [...GROUP_COLUMNS[grouping], ...TOTAL_COLUMNS];
  return [csvLine(columns), ...groups.map((group) => csvLine(columns.map((column) => group[column])))].join("");
}

const DAY_MS = 86_400_000;
const DEFAULT_DAYS = 30;
const MAX_DAYS = 366;

/** A report's [from, to): default the last 30 days to now; refused (400, naming the field) when empty or over 366 days. */
export function reportRange(query: { from?: string; to?: string }, now: Date): { from: Date; to: Date } {
  const to = query.to ? new Date(query.to) : now;
  const from = query.from ? new Date(query.from) : new Date(to.getTime() - DEFAULT_DAYS * DAY_MS);
  if (from >= to) throw fieldError("query.from", "must be before to (to is exclusive)");
  if (to.getTime() - from.getTime() > MAX_DAYS * DAY_MS) {
    throw fieldError("query.to", `must be at most ${MAX_DAYS} days after from`);
  }
  return { from, to };
}
