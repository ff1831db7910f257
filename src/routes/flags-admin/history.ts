// A flag over time: its changes and its exposures, for any key the platform has known.
import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../../db/client.ts";
import { flagExposures, flagHistory } from "../../flags/history.ts";
import { requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonResponse, problem, signedIn } from "../router.ts";
import { KeyParam, tags } from "./shared.ts";

export const historyRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/{key}/history",
      tags,
      summary: "Every change to a flag, newest first, with before/after and the fields that changed",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: {
        params: KeyParam,
        query: z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) }),
      },
      responses: {
        200: jsonResponse("Changes", z.object({ items: z.array(z.record(z.string(), z.unknown())) })),
        404: problem("No flag with this key has ever existed"),
      },
    }),
    async (c) => {
      const items = await flagHistory(createDb(c.var.config), c.req.valid("param").key, c.req.valid("query").limit);
      return c.json({ items }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/{key}/metrics",
      tags,
      summary: "Exposures per variant and day (sampled counts and the estimate they stand for)",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { params: KeyParam, query: z.object({ days: z.coerce.number().int().min(1).max(366).default(30) }) },
      responses: {
        200: jsonResponse("Exposures", z.record(z.string(), z.unknown())),
        404: problem("No flag with this key has ever existed"),
      },
    }),
    async (c) => {
      const { key } = c.req.valid("param");
      const exposures = await flagExposures(createDb(c.var.config), key, c.req.valid("query").days);
      return c.json({ key, ...exposures, sampleRate: c.var.config.FLAGS_EXPOSURE_SAMPLE_RATE }, 200);
    },
  );
