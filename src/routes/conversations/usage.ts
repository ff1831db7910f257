import { createRoute, z } from "@hono/zod-openapi";
import { usageTotals } from "../../costs/usage-store.ts";
import { createDb } from "../../db/client.ts";
import { principalOf, requireUser } from "../../middleware/auth.ts";
import { createRouter, jsonResponse, problem, signedIn } from "../router.ts";
import { Usage } from "./schemas.ts";

// The caller's model usage across every conversation (one conversation's is on GET /api/conversations/{id}).

const USAGE_WINDOW_MS = 30 * 24 * 3600 * 1000;

export const usageRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/api/users/me/usage",
    tags: ["conversations"],
    summary: "Your model calls, tokens and cost since a time (default: the last 30 days)",
    security: signedIn,
    middleware: [requireUser] as const,
    request: { query: z.object({ since: z.iso.datetime({ offset: true }).optional() }) },
    responses: {
      200: jsonResponse("Totals", Usage.extend({ since: z.string() })),
      401: problem("Not signed in"),
      422: problem("since is not an ISO 8601 time"),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const since = query.since ? new Date(query.since) : new Date(Date.now() - USAGE_WINDOW_MS);
    const totals = await usageTotals(createDb(c.var.config), { userId: principalOf(c).userId, since });
    return c.json({ ...totals, since: since.toISOString() }, 200);
  },
);
