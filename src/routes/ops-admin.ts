import { createRoute, z } from "@hono/zod-openapi";
import { recordAudit } from "../audit/record.ts";
import { ApiError } from "../errors.ts";
import { principalOf, requireAdmin, requireAdminOrViewer } from "../middleware/auth.ts";
import type { Alert, Silence } from "../ops/alerts.ts";
import { costAlertIds } from "../ops/budgets.ts";
import { budgetRemaining, burnRate } from "../ops/burn-rate.ts";
import { alertManager } from "../ops/jobs.ts";
import { PERIOD_MINUTES } from "../ops/ledger.ts";
import { sloIds } from "../ops/slos.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

// The SLOs, their alerts and silences (docs/slos.md): viewers read, admins acknowledge and silence.

const MAX_SILENCE_DAYS = 30;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const AlertJson = z
  .object({
    id: z.uuid(),
    slo: z.string().describe("The SLO id, or the cost alert (cost-budget-<daily|monthly>-<percent>, cost-anomaly)"),
    severity: z.enum(["page", "ticket"]),
    state: z.enum(["firing", "notified", "acknowledged", "resolved"]),
    dedup_key: z.string(),
    pair: z.string().describe("The burn-rate windows that fired it, long-short"),
    burn_rates: z.record(z.string(), z.number()).describe("Burn rate by window in minutes, when it fired"),
    fired_at: z.string(),
    notified_at: z.string().nullable(),
    acknowledged_at: z.string().nullable(),
    acknowledged_by: z.string().nullable(),
    resolved_at: z.string().nullable(),
    escalation_level: z.number().int(),
    summary: z.string().optional().describe("A cost alert's summary"),
    facts: z
      .record(z.string(), z.union([z.number(), z.string()]))
      .optional()
      .describe("A cost alert's figures: spent_usd, budget_usd, threshold_percent, median_usd ..."),
  })
  .openapi("Alert");

const alertJson = (a: Alert): z.infer<typeof AlertJson> => ({
  id: a.id,
  slo: a.slo,
  severity: a.severity,
  state: a.state,
  dedup_key: a.dedupKey,
  pair: a.pair,
  burn_rates: a.burnRates,
  fired_at: new Date(a.firedAt).toISOString(),
  notified_at: iso(a.notifiedAt),
  acknowledged_at: iso(a.acknowledgedAt),
  acknowledged_by: a.acknowledgedBy,
  resolved_at: iso(a.resolvedAt),
  escalation_level: a.escalationLevel,
  ...(a.summary ? { summary: a.summary } : {}),
  ...(a.facts ? { facts: a.facts } : {}),
});

const SilenceJson = z
  .object({
    id: z.uuid(),
    slo: z.string().nullable().describe("null silences every SLO"),
    until: z.string(),
    reason: z.string(),
    created_by: z.string(),
    created_at: z.string(),
  })
  .openapi("Silence");

const silenceJson = (s: Silence): z.infer<typeof SilenceJson> => ({
  id: s.id,
  slo: s.slo,
  until: new Date(s.until).toISOString(),
  reason: s.reason,
  created_by: s.createdBy,
  created_at: new Date(s.createdAt).toISOString(),
});

const WindowJson = z.object({ minutes: z.number().int(), good: z.number(), valid: z.number(), burn_rate: z.number() });

const SloJson = z
  .object({
    id: z.string(),
    description: z.string(),
    objective: z.number(),
    period_days: z.number().int(),
    sli: z.number().nullable().describe("Good / valid over the period; null before any valid event"),
    error_budget_remaining: z.number().describe("1 untouched, 0 spent, below 0 overspent"),
    windows: z.array(WindowJson),
    status: z.enum(["ok", "ticket", "page"]),
    open_alerts: z.array(z.uuid()),
  })
  .openapi("Slo");

const IdParam = z.object({ id: z.uuid() });

export const opsAdminRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/slos",
      tags: ["operations"],
      summary: "Every SLO: objective, SLI over the period, burn rate per window, error budget left, status",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      responses: {
        200: jsonResponse("The SLOs", z.object({ items: z.array(SloJson) })),
        403: problem("Not an admin or viewer"),
      },
    }),
    async (c) => {
      const { readings, open } = await alertManager(c.env).status(Date.now());
      const items = readings.map(({ slo, windows }) => {
        const period = windows.get(PERIOD_MINUTES) ?? { good: 0, valid: 0 };
        const mine = open.filter((a) => a.slo === slo.id);
        const status = mine.some((a) => a.severity === "page") ? "page" : mine.length ? "ticket" : "ok";
        return {
          id: slo.id,
          description: slo.description,
          objective: slo.objective,
          period_days: slo.periodDays,
          sli: period.valid === 0 ? null : period.good / period.valid,
          error_budget_remaining: budgetRemaining(period, slo.objective),
          windows: [...windows].map(([minutes, counts]) => ({
            minutes,
            ...counts,
            burn_rate: burnRate(counts, slo.objective),
          })),
          status: status as "ok" | "ticket" | "page",
          open_alerts: mine.map((a) => a.id),
        };
      });
      return c.json({ items }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/alerts",
      tags: ["operations"],
      summary: "Alerts, newest first (open ones and the last 500 resolved), optionally in one state",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { query: z.object({ state: AlertJson.shape.state.optional() }) },
      responses: {
        200: jsonResponse("The alerts", z.object({ items: z.array(AlertJson) })),
        403: problem("Not an admin or viewer"),
      },
    }),
    async (c) => {
      const alerts = await alertManager(c.env).alerts(c.req.valid("query").state);
      return c.json({ items: alerts.map(alertJson) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/alerts/{id}/acknowledge",
      tags: ["operations"],
      summary: "Acknowledge an alert: escalation stops, PagerDuty and the webhook hear of it",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam },
      responses: {
        200: jsonResponse("The alert", AlertJson),
        403: problem("Not an admin"),
        404: problem("No such alert"),
        409: problem("The alert is resolved"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const by = principalOf(c).userId;
      const alert = await alertManager(c.env).acknowledge(id, by, Date.now());
      if (!alert) throw new ApiError("NOT_FOUND", "No alert has this id.");
      if (alert.state === "resolved")
        throw new ApiError("CONFLICT", "The alert is resolved: there is nothing to acknowledge.");
      await recordAudit(c.var.config, {
        action: "ops.alert.acknowledged",
        target: { type: "alert", id },
        metadata: { slo: alert.slo, severity: alert.severity },
      });
      return c.json(alertJson(alert), 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/alerts/silences",
      tags: ["operations"],
      summary:
        "Silence notifications for one SLO or cost alert (or all) until a time; alerts still fire and are listed",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: {
        body: jsonBody(
          z.strictObject({
            slo: z
              .enum([...sloIds, ...costAlertIds] as [string, ...string[]])
              .optional()
              .describe("An SLO id or a cost alert (cost-budget-daily-80, cost-anomaly ...); absent: everything"),
            until: z.iso.datetime({ offset: true }),
            reason: z.string().trim().min(1, "must not be empty").max(500),
          }),
        ),
      },
      responses: {
        201: jsonResponse("The silence", SilenceJson),
        403: problem("Not an admin"),
        422: problem("A field is invalid (until must be in the future, at most 30 days ahead)"),
      },
    }),
    async (c) => {
      const { slo, until, reason } = c.req.valid("json");
      const now = Date.now();
      const untilMs = Date.parse(until);
      if (!(untilMs > now && untilMs <= now + MAX_SILENCE_DAYS * 86_400_000)) {
        throw new ApiError("VALIDATION_FAILED", "The request body is invalid: body.until is not ahead.", {
          errors: [
            { field: "body.until", message: `must be in the future and at most ${MAX_SILENCE_DAYS} days ahead` },
          ],
        });
      }
      const silence: Silence = {
        id: crypto.randomUUID(),
        slo: slo ?? null,
        until: untilMs,
        reason,
        createdBy: principalOf(c).userId,
        createdAt: now,
      };
      await alertManager(c.env).addSilence(silence);
      await recordAudit(c.var.config, {
        action: "ops.silence.created",
        target: { type: "silence", id: silence.id },
        after: { slo: silence.slo, until, reason },
      });
      return c.json(silenceJson(silence), 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/alerts/silences",
      tags: ["operations"],
      summary: "Silences in force, ending soonest first",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      responses: {
        200: jsonResponse("The silences", z.object({ items: z.array(SilenceJson) })),
        403: problem("Not an admin or viewer"),
      },
    }),
    async (c) => c.json({ items: (await alertManager(c.env).silences(Date.now())).map(silenceJson) }, 200),
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/alerts/silences/{id}",
      tags: ["operations"],
      summary: "End a silence now",
      security: signedIn,
      middleware: [requireAdmin] as const,
      request: { params: IdParam },
      responses: { 204: { description: "Ended" }, 403: problem("Not an admin"), 404: problem("No such silence") },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const ended = await alertManager(c.env).deleteSilence(id);
      if (!ended) throw new ApiError("NOT_FOUND", "No silence has this id.");
      await recordAudit(c.var.config, {
        action: "ops.silence.deleted",
        target: { type: "silence", id },
        before: { slo: ended.slo, until: new Date(ended.until).toISOString(), reason: ended.reason },
      });
      return c.body(null, 204);
    },
  );
