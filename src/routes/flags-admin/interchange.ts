// Import and export of the whole rule set as an Unleash client-API document.
import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../../db/client.ts";
import { importFeatures } from "../../flags/import.ts";
import { ClientFeaturesSchema, ImportDocumentSchema } from "../../flags/schema.ts";
import { exportFeatures } from "../../flags/store.ts";
import { requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "../router.ts";
import { actor, published, tags } from "./shared.ts";

type UnleashDocument = z.output<typeof ClientFeaturesSchema>;

export const interchangeRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/import",
      tags,
      summary: "Import an Unleash client-API document (merge or replace the rule set)",
      security: signedIn,
      middleware: [requireAdmin] as const,
      description:
        "`mode=merge` (default) adds or replaces the document's flags and segments; `mode=replace` makes it the whole " +
        "rule set. `invalid=refuse` (default): one feature or segment the platform refuses refuses the whole document " +
        "(422 naming each field). `invalid=skip`: every valid feature and segment is stored, and `refused` lists " +
        "the others (`{features, segments}`, each `{index, name | id, errors}`); a skipped entry counts as absent.",
      request: {
        query: z.object({
          mode: z.enum(["merge", "replace"]).default("merge"),
          invalid: z
            .enum(["refuse", "skip"])
            .default("refuse")
            .describe("What a refused feature or segment does: refuse the document, or skip that entry"),
        }),
        body: jsonBody(ImportDocumentSchema),
      },
      responses: {
        200: jsonResponse("What changed (and, with invalid=skip, what was refused)", z.record(z.string(), z.unknown())),
        422: problem("A rule is invalid (the field is named)"),
      },
    }),
    async (c) => {
      const { mode, invalid } = c.req.valid("query");
      const committed = await importFeatures(c.var.config, actor(c), c.req.valid("json"), mode, invalid);
      const summary = await published(c, committed);
      return c.json({ ...summary, version: committed.version }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/export",
      tags,
      summary: "Export every live flag and segment as an Unleash client-API document, as stored",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      responses: { 200: jsonResponse("Unleash client-API document", ClientFeaturesSchema) },
    }),
    async (c) => c.json((await exportFeatures(createDb(c.var.config))) as UnleashDocument, 200),
  );
