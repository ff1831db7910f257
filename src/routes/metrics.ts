import { createRoute, z } from "@hono/zod-openapi";
import { metricsAggregator } from "../metrics/record.ts";
import { requireOperator } from "../middleware/operator.ts";
import { createRouter, problem, signedIn } from "./router.ts";

const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const getMetrics = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["operations"],
  summary: "Prometheus metrics",
  description:
    "Global counters and histograms (all isolates, aggregated in one Durable Object) in the Prometheus text format 0.0.4, with build_info and uptime_seconds for the build that answers. The catalog is in docs/metrics.md.",
  security: [{ operatorToken: [] }, ...signedIn],
  middleware: [requireOperator] as const,
  responses: {
    200: { description: "The exposition", content: { "text/plain": { schema: z.string() } } },
    401: problem("Missing or wrong operator token"),
    403: problem("OPERATOR_TOKEN is not set: operator endpoints are disabled"),
  },
});

export const metricsRoutes = createRouter();

metricsRoutes.openapi(getMetrics, async (c) => {
  const { APP_VERSION: version, GIT_COMMIT: commit } = c.var.config;
  const exposition = await metricsAggregator(c.env).exposition({ version, commit });
  return c.text(exposition, 200, { "Content-Type": PROMETHEUS_CONTENT_TYPE, "Cache-Control": "no-store" });
});
