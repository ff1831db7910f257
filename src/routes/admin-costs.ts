import { createRoute, z } from "@hono/zod-openapi";
import { COST_GROUPINGS, costsBy, costsCsv, reportRange } from "../costs/report.ts";
import { createDb } from "../db/client.ts";
import { requireAdminOrViewer } from "../middleware/auth.ts";
import { createRouter, jsonResponse, problem, signedIn } from "./router.ts";

// Model spend from llm_usage, grouped, for admins and viewers (docs/costs.md). A read, so not audited,
// like the other admin reads.

const Instant = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })], {
    error: "must be an ISO 8601 date (2026-01-31) or timestamp (2026-01-31T12:00:00Z)",
  })
  .optional();

const CostQuery = z.object({
  group_by: z.enum(COST_GROUPINGS).default("user"),
  from: Instant.describe("inclusive; default: 30 days before to"),
  to: Instant.describe("exclusive; default: now; at most 366 days after from"),
  format: z.enum(["json", "csv"]).optional().describe("default: CSV when Accept: text/csv, else JSON"),
});

const Totals = {
  calls: z.number().int(),
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  cost_usd: z.number().describe("from the price table; calls of unpriced models count 0"),
};

const CostGroup = z
  .object({
    user_id: z.uuid().nullable().optional().describe("group_by=user; null: no particular user (ingestion)"),
    email: z.string().nullable().optional().describe("group_by=user"),
    model: z.string().optional().describe("group_by=model"),
    feature: z.enum(["answers", "embeddings", "reranker", "voice"]).optional().describe("group_by=feature"),
    day: z.iso.date().optional().describe("group_by=day (UTC)"),
    conversation_id: z.uuid().nullable().optional().describe("group_by=conversation; null: outside a conversation"),
    ...Totals,
  })
  .openapi("CostGroup");

const CostReport = z
  .object({
    group_by: z.enum(COST_GROUPINGS),
    from: z.iso.datetime(),
    to: z.iso.datetime(),
    groups: z.array(CostGroup),
    totals: z.object(Totals),
  })
  .openapi("CostReport");

export const adminCostRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/api/admin/costs",
    tags: ["admin"],
    security: signedIn,
    middleware: [requireAdminOrViewer] as const,
    summary: "Model spend grouped by user, model, feature, day or conversation (JSON, or CSV)",
    description:
      "Sums llm_usage rows (paid model calls) in [from, to). CSV (RFC 4180, header row) with format=csv or Accept: text/csv.",
    request: { query: CostQuery },
    responses: {
      200: {
        ...jsonResponse("One row per group", CostReport),
        content: { ...jsonResponse("", CostReport).content, "text/csv": { schema: z.string() } },
      },
      422: problem("A bad group_by, from or to (unparseable, from >= to, more than 366 days): the field is named"),
      401: problem("Not signed in"),
      403: problem("Signed in without the admin or viewer role"),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const { from, to } = reportRange(query, new Date());
    const groups = await costsBy(createDb(c.var.config), query.group_by, from, to);
    const csv = query.format ? query.format === "csv" : (c.req.header("accept") ?? "").includes("text/csv");
    if (csv) {
      return c.body(costsCsv(query.group_by, groups), 200, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": `attachment; filename="costs-by-${query.group_by}.csv"`,
      });
    }
    const totals = { calls: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 };
    for (const group of groups) {
      totals.calls += group.calls;
      totals.prompt_tokens += group.prompt_tokens;
      totals.completion_tokens += group.completion_tokens;
      totals.cost_usd += group.cost_usd;
    }
    totals.cost_usd = Math.round(totals.cost_usd * 1e8) / 1e8;
    return c.json({ group_by: query.group_by, from: from.toISOString(), to: to.toISOString(), groups, totals }, 200);
  },
);
