import { createRoute, z } from "@hono/zod-openapi";
import {
  type AuditFilter,
  auditItem,
  decodeCursor,
  exportAuditCsv,
  listAudit,
  MAX_PAGE_SIZE,
  verifyAuditChain,
} from "../audit/query.ts";
import { recordAudit } from "../audit/record.ts";
import { createDb } from "../db/client.ts";
import { ApiError } from "../errors.ts";
import { recordMetrics } from "../metrics/record.ts";
import { requireAdminOrViewer } from "../middleware/auth.ts";
import { createRouter, problem, signedIn } from "./router.ts";

const Filters = z.object({
  actor_id: z.string().min(1).max(200).optional(),
  actor_type: z.enum(["user", "api_key", "system", "anonymous"]).optional(),
  action: z
    .string()
    .regex(/^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$/, 'must be an action ("auth.login") or a prefix ("auth.*")')
    .optional()
    .openapi({ example: "auth.*" }),
  outcome: z.enum(["success", "failure", "denied"]).optional(),
  target_type: z.string().min(1).max(100).optional(),
  target_id: z.string().min(1).max(200).optional(),
  from: z.iso.datetime({ offset: true }).optional().openapi({ description: "Inclusive, ISO 8601" }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ description: "Exclusive, ISO 8601" }),
});

// Cursor pagination (cursor, limit, next_cursor), not PageQuery: entries keep arriving, so offsets would skip or repeat.
const ListQuery = Filters.extend({
  cursor: z.string().max(100).optional().openapi({ description: "next_cursor of the previous page" }),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(50),
});

const json = z.unknown().nullable();

const AuditItem = z
  .object({
    id: z.uuid(),
    seq: z.number().int(),
    occurred_at: z.iso.datetime(),
    actor_type: z.string(),
    actor_id: z.string().nullable(),
    action: z.string(),
    outcome: z.string(),
    target_type: z.string().nullable(),
    target_id: z.string().nullable(),
    request_id: z.string().nullable(),
    trace_id: z.string().nullable(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    before: json,
    after: json,
    metadata: json,
    prev_hash: z.string(),
    hash: z.string(),
  })
  .openapi("AuditEntry");

const AuditPage = z.object({
  items: z.array(AuditItem),
  next_cursor: z.string().nullable(),
  total: z.number().int(),
});

const Verification = z.object({
  ok: z.boolean(),
  rows_checked: z.number().int(),
  first_broken: z
    .object({
      seq: z.number().int(),
      id: z.uuid(),
      reason: z.enum(["hash mismatch", "prev_hash does not match the previous row", "gap in seq (row deleted?)"]),
    })
    .optional(),
});

// Security scheme names are registered with the auth routes: an access token or an API key.

const denied = {
  401: problem("Not signed in"),
  403: problem("Signed in without the admin or viewer role"),
  422: problem("A query parameter is invalid"),
};

function toFilter(q: z.infer<typeof Filters>): AuditFilter {
  return {
    actorId: q.actor_id,
    actorType: q.actor_type,
    action: q.action,
    outcome: q.outcome,
    targetType: q.target_type,
    targetId: q.target_id,
    from: q.from ? new Date(q.from) : undefined,
    to: q.to ? new Date(q.to) : undefined,
  };
}

export const adminAuditRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/audit",
      tags: ["admin"],
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      summary: "Audit entries, newest first, filtered and paginated by cursor",
      request: { query: ListQuery },
      responses: {
        200: { description: "One page", content: { "application/json": { schema: AuditPage } } },
        ...denied,
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      if (query.cursor !== undefined && after === undefined) {
        throw new ApiError("VALIDATION_FAILED", "The request query is invalid: query.cursor is not a cursor.", {
          errors: [{ field: "query.cursor", message: "is not a cursor from next_cursor" }],
        });
      }
      const page = await listAudit(createDb(c.var.config), toFilter(query), { after, limit: query.limit });
      return c.json({ items: page.items.map(auditItem), next_cursor: page.nextCursor, total: page.total }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/audit/export",
      tags: ["admin"],
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      summary: "The filtered audit entries as CSV, oldest first, streamed",
      description:
        "Columns as in the list, JSON columns as JSON text. Cells starting with = + - @ are prefixed with a single quote so spreadsheets do not run them.",
      request: { query: Filters },
      responses: {
        200: { description: "CSV (RFC 4180)", content: { "text/csv": { schema: z.string() } } },
        ...denied,
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      // Taking the trail out of the system is itself worth a row.
      await recordAudit(c.var.config, {
        action: "audit.exported",
        target: { type: "audit_log" },
        metadata: { filter: query },
      });
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      return c.body(exportAuditCsv(createDb(c.var.config), toFilter(query)), 200, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": `attachment; filename="audit-${stamp}.csv"`,
        "Cache-Control": "no-store",
      });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/audit/verify",
      tags: ["admin"],
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      summary: "Walks the hash chain and names the first broken link",
      description:
        "200 whether or not the chain holds: a broken chain is a finding, not a failed request. ok=false comes with first_broken.",
      responses: {
        200: { description: "The verdict", content: { "application/json": { schema: Verification } } },
        401: denied[401],
        403: denied[403],
      },
    }),
    async (c) => {
      const report = await verifyAuditChain(createDb(c.var.config));
      await recordMetrics(
        c.env,
        c.executionCtx,
        { name: "audit_chain_verifications_total", labels: { outcome: report.ok ? "intact" : "broken" }, value: 1 },
        { name: "audit_chain_intact", labels: {}, value: report.ok ? 1 : 0 },
      );
      return c.json(
        report.ok
          ? { ok: true, rows_checked: report.rowsChecked }
          : { ok: false, rows_checked: report.rowsChecked, first_broken: report.firstBroken },
        200,
      );
    },
  );
