// The playground: how flags evaluate for a context an admin makes up.
import { createRoute, z } from "@hono/zod-openapi";
import { evaluate } from "../../flags/evaluate.ts";
import { ruleSetFor } from "../../flags/request.ts";
import { ContextSchema, EvaluationSchema } from "../../flags/schema.ts";
import { requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, signedIn } from "../router.ts";
import { tags } from "./shared.ts";

export const playgroundRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/api/admin/flags/playground",
    tags,
    summary: "Evaluate flags for any context, as given (overrides of any user included)",
    security: signedIn,
    middleware: [requireAdminOrViewer] as const,
    request: {
      body: jsonBody(z.object({ context: ContextSchema.default({}), flags: z.array(z.string()).max(1000).optional() })),
    },
    responses: {
      200: jsonResponse(
        "Per flag: enabled, variant, value and reason",
        z.object({ version: z.number().int(), flags: z.record(z.string(), EvaluationSchema) }),
      ),
    },
  }),
  async (c) => {
    const { context, flags: keys } = c.req.valid("json");
    const ruleSet = await ruleSetFor(c);
    const results: Record<string, ReturnType<typeof evaluate>> = {};
    for (const key of keys ?? ruleSet.keys) results[key] = evaluate(ruleSet, key, context);
    return c.json({ version: ruleSet.version, flags: results }, 200);
  },
);
