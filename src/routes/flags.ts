// Flags for clients: evaluation for the caller, the Unleash client API (so Unleash SDKs read our flags), and the
// change stream. The rule set comes from isolate memory or KV (Postgres only when KV is empty); the database signs
// callers in (remembered 30 s; an access token alone is accepted when it is down) and stores exposure counts.
import { createRoute, z } from "@hono/zod-openapi";
import { evaluateAll } from "../flags/evaluate.ts";
import { clientFeatures, unleashFromFlag } from "../flags/interchange.ts";
import { flagHub } from "../flags/publish.ts";
import { contextFor, evaluated, exposed, flagCaller, ruleSetFor } from "../flags/request.ts";
import { ClientFeaturesSchema, ContextSchema, EvaluationSchema } from "../flags/schema.ts";
import { heldSnapshot } from "../flags/snapshot-cache.ts";
import { endWhenRefused, hubStreamRequest, refusalOf, viewerOf } from "../flags/stream.ts";
import { principalOf, requireAdminOrViewer } from "../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

const tags = ["flags"];

export const flagRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/flags/evaluate",
      tags,
      summary: "Every flag for a context (the caller's own user id always applies)",
      security: signedIn,
      middleware: [flagCaller] as const,
      request: { body: jsonBody(z.object({ context: ContextSchema.default({}) })) },
      responses: {
        200: jsonResponse(
          "Per flag: enabled, variant, value, reason and version",
          z.object({ version: z.number().int(), flags: z.record(z.string(), EvaluationSchema) }),
        ),
        401: problem("Not signed in"),
        503: problem(
          "The database did not answer: NOT_READY when the caller cannot be signed in without it (an API key)",
        ),
      },
    }),
    async (c) => {
      const context = contextFor(c, c.req.valid("json").context);
      const ruleSet = await ruleSetFor(c);
      const flags = evaluateAll(ruleSet, context);
      evaluated(c, "evaluate", ruleSet.keys.length);
      exposed(c, context, Object.entries(flags));
      return c.json({ version: ruleSet.version, flags }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/client/features",
      tags,
      summary: "The Unleash client API: every live flag and segment, for Unleash SDKs (ETag / If-None-Match)",
      description:
        "Send an API key of an admin or viewer as `Authorization: va_k_...` (as Unleash SDKs do), Bearer, or X-API-Key. " +
        "Flags outside `environment` (default: this deployment's) or outside their schedule are served disabled; " +
        "per-user overrides are not part of the Unleash format.",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { query: z.object({ environment: z.string().max(100).optional() }) },
      responses: {
        200: jsonResponse("Unleash client-API document", ClientFeaturesSchema),
        304: { description: "Not modified since the ETag sent in If-None-Match" },
      },
    }),
    async (c) => {
      const ruleSet = await ruleSetFor(c);
      const snapshot = heldSnapshot();
      const environment = c.req.valid("query").environment ?? c.var.config.ENVIRONMENT;
      // The schedule can turn a flag on or off between versions: the minute is part of the ETag.
      const etag = `"${ruleSet.version}-${encodeURIComponent(environment)}-${Math.floor(Date.now() / 60_000)}"`;
      if (c.req.header("if-none-match") === etag) return c.body(null, 304, { ETag: etag });
      const features = (snapshot?.flags ?? []).map((rules) => {
        const presentation = rules.presentation ?? { description: "", kind: "release", unleash: {} };
        return unleashFromFlag(rules.key, { ...rules, ...presentation, tags: [] }, environment);
      });
      const doc = clientFeatures(ruleSet.version, features, snapshot?.segments ?? []);
      return c.json(doc as z.output<typeof ClientFeaturesSchema>, 200, { ETag: etag });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/flags/stream",
      tags,
      summary: "Server-sent events: one `change` per rule-set version (id = version); Last-Event-ID replays",
      description:
        "Admins and viewers get every change; a plain user gets every version with the flag keys changed and its own " +
        "overrides only. The caller is checked again every 30 s: once it is no longer admitted (logout, ended " +
        "session, deactivation, role change, expired token), an `end` event `{code, reason}` closes the stream.",
      security: signedIn,
      middleware: [flagCaller] as const,
      responses: {
        200: { description: "text/event-stream", content: { "text/event-stream": { schema: z.string() } } },
        503: problem(
          "The database did not answer: NOT_READY when the caller cannot be signed in without it (an API key)",
        ),
      },
    }),
    async (c) => {
      const opened = principalOf(c);
      const hub = await flagHub(c.env).fetch(hubStreamRequest(viewerOf(opened), c.req.header("last-event-id")));
      if (!hub.body) return new Response(null, hub);
      const body = endWhenRefused(hub.body, () => refusalOf(c, opened));
      return new Response(body, { status: hub.status, headers: hub.headers });
    },
  );
