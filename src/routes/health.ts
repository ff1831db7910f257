import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../errors.ts";
import { checkComponents, checkReadiness } from "../health/probes.ts";
import { overallStatus } from "../health/status.ts";
import { requireOperator } from "../middleware/operator.ts";
import { createRouter, problem, signedIn } from "./router.ts";

const Liveness = z.object({
  status: z.literal("ok"),
  version: z.string(),
  commit: z.string(),
  timestamp: z.iso.datetime(),
});

const Component = z
  .object({
    status: z.enum(["ok", "down", "disabled"]),
    latency_ms: z.number().nullable(),
    reason: z.string().optional(),
  })
  .catchall(z.unknown());

const Readiness = z.object({ status: z.literal("ready"), checks: z.record(z.string(), Component) });

const Detailed = z.object({
  status: z.enum(["healthy", "degraded", "unhealthy"]),
  version: z.string(),
  commit: z.string(),
  timestamp: z.iso.datetime(),
  components: z.record(z.string(), Component),
});

export const healthRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["health"],
      summary: "Liveness: the Worker answers (also HEAD)",
      responses: { 200: { description: "Alive", content: { "application/json": { schema: Liveness } } } },
    }),
    (c) =>
      c.json(
        {
          status: "ok" as const,
          version: c.var.config.APP_VERSION,
          commit: c.var.config.GIT_COMMIT,
          timestamp: new Date().toISOString(),
        },
        200,
      ),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/ready",
      tags: ["health"],
      summary: "Readiness: the database answers and its migrations are current",
      responses: {
        200: { description: "Ready", content: { "application/json": { schema: Readiness } } },
        503: problem("Not ready, with per-check detail"),
      },
    }),
    async (c) => {
      const checks = await checkReadiness(c.var.config);
      if (checks.database.status !== "ok" || checks.migrations.status !== "ok") {
        throw new ApiError("NOT_READY", "A readiness check failed; see checks.", {
          extensions: { checks },
          headers: { "Retry-After": "5" },
        });
      }
      return c.json({ status: "ready" as const, checks }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/health/detailed",
      tags: ["health"],
      summary: "Every component's status and latency (operator token)",
      security: [{ operatorToken: [] }, ...signedIn],
      middleware: [requireOperator] as const,
      responses: {
        200: { description: "Component report", content: { "application/json": { schema: Detailed } } },
        401: problem("Missing or wrong operator token"),
      },
    }),
    async (c) => {
      const components = await checkComponents(c.var.config, c.env);
      return c.json(
        {
          status: overallStatus(components),
          version: c.var.config.APP_VERSION,
          commit: c.var.config.GIT_COMMIT,
          timestamp: new Date().toISOString(),
          components,
        },
        200,
      );
    },
  );
