// Admin API of feature flags (docs/flags.md): admins write, viewers read. Every write goes through the one
// writer (src/flags/store.ts) and is published before the response, so the answer means "live".
import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, count, eq, ilike, or, type SQL, sql } from "drizzle-orm";
import type { Context } from "hono";
import { createDb } from "../adapters/db/client.ts";
import { flagSegments, flags } from "../adapters/db/schema/flags.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import {
  createFlag,
  definitionOf,
  deleteFlag,
  deleteSegment,
  listOverrides,
  type Precondition,
  removeExpiredOverrides,
  removeOverride,
  saveSegment,
  setOverrides,
  updateFlag,
} from "../flags/admin.ts";
import { evaluate } from "../flags/evaluate.ts";
import { flagExposures, flagHistory } from "../flags/history.ts";
import { importFeatures } from "../flags/import.ts";
import { clientFeatures, unleashFromFlag } from "../flags/interchange.ts";
import type { FlagDefinition } from "../flags/model.ts";
import { publishCommitted } from "../flags/publish.ts";
import { ruleSetFor } from "../flags/request.ts";
import {
  BulkOverrideInput,
  ClientFeaturesSchema,
  ContextSchema,
  DependencySchema,
  EvaluationSchema,
  Flag,
  FlagCreate,
  FlagFields,
  FlagPatch,
  ImportDocumentSchema,
  identifier,
  OverrideInput,
  ScheduleSchema,
  SegmentInput,
  StrategySchema,
  VariantSchema,
} from "../flags/schema.ts";
import { type Committed, expectedVersion, type FlagRecord, flagRecord, loadFlag, segmentOf } from "../flags/store.ts";
import { principalOf, requireRole } from "../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

const reader = requireRole("admin", "viewer");
const writer = requireRole("admin");
const tags = ["flags"];
const KeyParam = z.object({ key: z.string().min(1).describe("The flag key (URL-encoded)") });
const UserParam = KeyParam.extend({ userId: identifier().max(200).describe("The user id (URL-encoded)") });
const IfMatch = z.object({ "if-match": z.string().optional().describe('The flag\'s ETag, e.g. "3"') });
const SegmentParam = z.object({ id: z.coerce.number().int().positive() });
const Overrides = z.array(z.record(z.string(), z.unknown()));
const Segment = z.object({
  id: z.number().int(),
  name: z.string().optional(),
  description: z.string().nullish(),
  constraints: z.array(z.unknown()),
  version: z.number().int().optional(),
});

/** A flag, with its version as the ETag (the If-Match of the next write). */
type UnleashDocument = z.output<typeof ClientFeaturesSchema>;

/** The answers of a write to one flag. */
const flagWriteResponses = {
  200: jsonResponse("The flag (ETag: its new version)", Flag),
  404: problem("No such flag"),
  412: problem("The flag changed since it was read (If-Match)"),
  422: problem("A rule is invalid (the field is named)"),
};

const flagJson = (c: Context<AppEnv>, record: FlagRecord) =>
  c.json(record as z.output<typeof Flag>, 200, { ETag: `"${record.version}"` });

/** Publishes a committed write, then answers with its result. */
async function published<T>(c: Context<AppEnv>, committed: Committed<T>): Promise<T> {
  await publishCommitted(c.env, committed);
  return committed.result;
}

const precondition = (c: Context<AppEnv>, bodyVersion: number | undefined, required: boolean): Precondition => ({
  expected: expectedVersion(c.req.header("if-match"), bodyVersion),
  required,
});

const actor = (c: Context<AppEnv>) => principalOf(c).userId;

/** Toggle and archive: the flag, If-Match, and an optional body with one optional boolean. */
const switchRequest = (field: string) => ({
  params: KeyParam,
  headers: IfMatch,
  body: {
    required: false,
    content: { "application/json": { schema: z.object({ [field]: z.boolean().optional() }) } },
  },
});

/** That boolean, if the optional body has it (the body may be absent altogether). */
async function switchValue(c: Context<AppEnv>, field: string): Promise<boolean | undefined> {
  const body = (await c.req.json().catch(() => ({}))) as Record<string, unknown> | null;
  const value = body?.[field];
  if (value === undefined || typeof value === "boolean") return value;
  throw new ApiError("VALIDATION_FAILED", `body.${field} must be true or false.`, {
    errors: [{ field: `body.${field}`, message: "must be a boolean" }],
  });
}

/** A new definition from the defaults plus what the body gave; the value type decides the default value. */
function newDefinition(input: z.output<typeof FlagFields>): FlagDefinition {
  const { defaultValue, ...rest } = input;
  return { ...rest, defaultValue: defaultValue ?? (input.type === "boolean" ? false : null) };
}

const ListQuery = z.object({
  q: z.string().trim().max(200).optional().describe("Search in key and description"),
  tag: z.string().optional(),
  archived: z.enum(["false", "true", "all"]).default("false"),
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(500).default(50),
});

export const flagAdminRoutes = createRouter()
  // Fixed paths first: they would otherwise be read as flag keys.
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/import",
      tags,
      summary: "Import an Unleash client-API document (merge or replace the rule set)",
      security: signedIn,
      middleware: [writer] as const,
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
      middleware: [reader] as const,
      responses: { 200: jsonResponse("Unleash client-API document", ClientFeaturesSchema) },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const [rows, segments, state] = await Promise.all([
        db.select().from(flags).where(eq(flags.archived, false)).orderBy(asc(flags.key)),
        db.select().from(flagSegments).orderBy(asc(flagSegments.id)),
        db.execute(sql`select version from flag_state where id = 1`),
      ]);
      const version = Number((state as unknown as { rows: { version: string }[] }).rows[0]?.version ?? 0);
      const features = rows.map((row) => unleashFromFlag(row.key, row.definition));
      return c.json(clientFeatures(version, features, segments.map(segmentOf)) as UnleashDocument, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/playground",
      tags,
      summary: "Evaluate flags for any context, as given (overrides of any user included)",
      security: signedIn,
      middleware: [reader] as const,
      request: {
        body: jsonBody(
          z.object({ context: ContextSchema.default({}), flags: z.array(z.string()).max(1000).optional() }),
        ),
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
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/overrides/cleanup",
      tags,
      summary: "Delete every expired override",
      security: signedIn,
      middleware: [writer] as const,
      responses: { 200: jsonResponse("How many were removed", z.object({ removed: z.number().int() })) },
    }),
    async (c) => c.json(await published(c, await removeExpiredOverrides(c.var.config, actor(c))), 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/segments",
      tags,
      summary: "List segments (reusable constraint sets)",
      security: signedIn,
      middleware: [reader] as const,
      responses: { 200: jsonResponse("Segments", z.object({ items: z.array(Segment) })) },
    }),
    async (c) => {
      const rows = await createDb(c.var.config).select().from(flagSegments).orderBy(asc(flagSegments.id));
      return c.json({ items: rows.map((row) => ({ ...segmentOf(row), version: row.version })) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/segments",
      tags,
      summary: "Create a segment",
      security: signedIn,
      middleware: [writer] as const,
      request: { body: jsonBody(SegmentInput) },
      responses: { 201: jsonResponse("The segment", Segment), 422: problem("A constraint is invalid") },
    }),
    async (c) =>
      c.json(await published(c, await saveSegment(c.var.config, actor(c), undefined, c.req.valid("json"))), 201),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/api/admin/flags/segments/{id}",
      tags,
      summary: "Replace a segment's name and constraints",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: SegmentParam, body: jsonBody(SegmentInput) },
      responses: { 200: jsonResponse("The segment", Segment), 404: problem("No such segment") },
    }),
    async (c) =>
      c.json(
        await published(c, await saveSegment(c.var.config, actor(c), c.req.valid("param").id, c.req.valid("json"))),
        200,
      ),
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/flags/segments/{id}",
      tags,
      summary: "Delete a segment no strategy uses",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: SegmentParam },
      responses: { 204: { description: "Deleted" }, 404: problem("No such segment"), 409: problem("In use") },
    }),
    async (c) => {
      await published(c, await deleteSegment(c.var.config, actor(c), c.req.valid("param").id));
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags",
      tags,
      summary: "List and search flags",
      security: signedIn,
      middleware: [reader] as const,
      request: { query: ListQuery },
      responses: {
        200: jsonResponse(
          "A page of flags",
          z.object({
            items: z.array(Flag),
            total: z.number().int(),
            page: z.number().int(),
            page_size: z.number().int(),
          }),
        ),
      },
    }),
    async (c) => {
      const { q, tag, archived, page, page_size } = c.req.valid("query");
      const filters: SQL[] = [];
      if (archived !== "all") filters.push(eq(flags.archived, archived === "true"));
      if (tag) filters.push(sql`${flags.definition} -> 'tags' ? ${tag}`);
      if (q) {
        const pattern = `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
        filters.push(or(ilike(flags.key, pattern), ilike(sql`${flags.definition} ->> 'description'`, pattern)) as SQL);
      }
      const where = filters.length ? and(...filters) : undefined;
      const db = createDb(c.var.config);
      const [rows, totals] = await Promise.all([
        db
          .select()
          .from(flags)
          .where(where)
          .orderBy(asc(flags.key))
          .limit(page_size)
          .offset((page - 1) * page_size),
        db.select({ total: count() }).from(flags).where(where),
      ]);
      return c.json(
        { items: rows.map(flagRecord) as z.output<typeof Flag>[], total: totals[0]?.total ?? 0, page, page_size },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags",
      tags,
      summary: "Create a flag",
      security: signedIn,
      middleware: [writer] as const,
      request: { body: jsonBody(FlagCreate) },
      responses: {
        201: jsonResponse("The flag (ETag: its version)", Flag),
        409: problem("A flag with this key exists"),
        422: problem("A rule is invalid (the field is named)"),
      },
    }),
    async (c) => {
      const { key, ...input } = c.req.valid("json");
      const created = await published(c, await createFlag(c.var.config, actor(c), key, newDefinition(input)));
      return c.json(created as z.output<typeof Flag>, 201, { ETag: `"${created.version}"` });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/{key}",
      tags,
      summary: "Get a flag (ETag: its version)",
      security: signedIn,
      middleware: [reader] as const,
      request: { params: KeyParam },
      responses: flagWriteResponses,
    }),
    async (c) => flagJson(c, flagRecord(await loadFlag(createDb(c.var.config), c.req.valid("param").key))),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/api/admin/flags/{key}",
      tags,
      summary: "Replace a flag's definition (needs If-Match or version)",
      security: signedIn,
      middleware: [writer] as const,
      request: {
        params: KeyParam,
        headers: IfMatch,
        body: jsonBody(FlagFields.extend({ version: z.number().int().positive().optional() })),
      },
      responses: { ...flagWriteResponses, 428: problem("If-Match (or version) is missing") },
    }),
    async (c) => {
      const { version, ...input } = c.req.valid("json");
      const committed = await updateFlag(
        c.var.config,
        actor(c),
        c.req.valid("param").key,
        precondition(c, version, true),
        () => ({
          definition: newDefinition(input),
        }),
      );
      return flagJson(c, await published(c, committed));
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/api/admin/flags/{key}",
      tags,
      summary: "Change some fields of a flag (needs If-Match or version)",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: KeyParam, headers: IfMatch, body: jsonBody(FlagPatch) },
      responses: { ...flagWriteResponses, 428: problem("If-Match (or version) is missing") },
    }),
    async (c) => {
      // Only the fields the client sent: zod's defaults must not reset the others.
      const sent = (await c.req.json()) as Record<string, unknown>;
      const { version, ...patch } = c.req.valid("json");
      const changes = Object.fromEntries(Object.entries(patch).filter(([field]) => field in sent));
      const committed = await updateFlag(
        c.var.config,
        actor(c),
        c.req.valid("param").key,
        precondition(c, version, true),
        (current) => ({
          definition: { ...definitionOf(current), ...changes } as FlagDefinition,
        }),
      );
      return flagJson(c, await published(c, committed));
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/flags/{key}",
      tags,
      summary: "Delete a flag, its overrides with it (needs If-Match); archive it to keep its history live",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: KeyParam, headers: IfMatch },
      responses: {
        204: { description: "Deleted" },
        404: problem("No such flag"),
        409: problem("Other flags depend on it"),
        412: problem("The flag changed since it was read"),
        428: problem("If-Match is missing"),
      },
    }),
    async (c) => {
      await published(
        c,
        await deleteFlag(c.var.config, actor(c), c.req.valid("param").key, precondition(c, undefined, true)),
      );
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/{key}/toggle",
      tags,
      summary: "Turn the kill switch on or off (flips it when `enabled` is absent)",
      security: signedIn,
      middleware: [writer] as const,
      request: switchRequest("enabled"),
      responses: flagWriteResponses,
    }),
    async (c) => {
      const enabled = await switchValue(c, "enabled");
      const committed = await updateFlag(
        c.var.config,
        actor(c),
        c.req.valid("param").key,
        precondition(c, undefined, false),
        (current) => ({ definition: { ...definitionOf(current), enabled: enabled ?? !current.enabled } }),
        "toggled",
      );
      return flagJson(c, await published(c, committed));
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/{key}/archive",
      tags,
      summary: "Archive a flag (it then evaluates as not found) or, with archived: false, restore it",
      security: signedIn,
      middleware: [writer] as const,
      request: switchRequest("archived"),
      responses: flagWriteResponses,
    }),
    async (c) => {
      const archived = (await switchValue(c, "archived")) ?? true;
      const committed = await updateFlag(
        c.var.config,
        actor(c),
        c.req.valid("param").key,
        precondition(c, undefined, false),
        (current) => ({ definition: definitionOf(current), archived }),
        archived ? "archived" : "restored",
      );
      return flagJson(c, await published(c, committed));
    },
  )
  .openapi(partRoute("strategies", z.object({ strategies: z.array(StrategySchema) })), async (c) =>
    replacePart(c, "strategies", c.req.valid("json")),
  )
  .openapi(partRoute("variants", z.object({ variants: z.array(VariantSchema) })), async (c) =>
    replacePart(c, "variants", c.req.valid("json")),
  )
  .openapi(partRoute("dependencies", z.object({ dependencies: z.array(DependencySchema) })), async (c) =>
    replacePart(c, "dependencies", c.req.valid("json")),
  )
  .openapi(partRoute("schedule", z.object({ schedule: ScheduleSchema.nullable() })), async (c) =>
    replacePart(c, "schedule", c.req.valid("json")),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/{key}/overrides",
      tags,
      summary: "List a flag's per-user overrides",
      security: signedIn,
      middleware: [reader] as const,
      request: { params: KeyParam },
      responses: { 200: jsonResponse("Overrides", z.object({ items: Overrides })), 404: problem("No such flag") },
    }),
    async (c) => c.json({ items: await listOverrides(createDb(c.var.config), c.req.valid("param").key) }, 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags/{key}/overrides",
      tags,
      summary: "Set the same override for many users at once",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: KeyParam, body: jsonBody(BulkOverrideInput) },
      responses: {
        200: jsonResponse("The overrides set", z.object({ items: Overrides })),
        404: problem("No such flag"),
      },
    }),
    async (c) => {
      const { userIds, ...input } = c.req.valid("json");
      const items = await published(
        c,
        await setOverrides(c.var.config, actor(c), c.req.valid("param").key, userIds, input),
      );
      return c.json({ items }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/api/admin/flags/{key}/overrides/{userId}",
      tags,
      summary: "Set one user's override (wins over every rule while active)",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: UserParam, body: jsonBody(OverrideInput) },
      responses: { 200: jsonResponse("The override", z.record(z.string(), z.unknown())), 404: problem("No such flag") },
    }),
    async (c) => {
      const { key, userId } = c.req.valid("param");
      const [item] = await published(c, await setOverrides(c.var.config, actor(c), key, [userId], c.req.valid("json")));
      return c.json(item ?? {}, 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/admin/flags/{key}/overrides/{userId}",
      tags,
      summary: "Remove one user's override",
      security: signedIn,
      middleware: [writer] as const,
      request: { params: UserParam },
      responses: { 204: { description: "Removed" }, 404: problem("No such override") },
    }),
    async (c) => {
      const { key, userId } = c.req.valid("param");
      await published(c, await removeOverride(c.var.config, actor(c), key, userId));
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags/{key}/history",
      tags,
      summary: "Every change to a flag, newest first, with before/after and the fields that changed",
      security: signedIn,
      middleware: [reader] as const,
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
      middleware: [reader] as const,
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

/** PUT /api/admin/flags/{key}/<part>: replace one part of a flag (If-Match optional). */
function partRoute<T extends z.ZodObject>(part: string, body: T) {
  return createRoute({
    method: "put",
    path: `/api/admin/flags/{key}/${part}`,
    tags,
    summary: `Replace a flag's ${part}`,
    security: signedIn,
    middleware: [writer] as const,
    request: { params: KeyParam, headers: IfMatch, body: jsonBody(body) },
    responses: flagWriteResponses,
  });
}

async function replacePart(c: Context<AppEnv>, part: keyof FlagDefinition, body: Record<string, unknown>) {
  const key = c.req.param("key") as string;
  const committed = await updateFlag(c.var.config, actor(c), key, precondition(c, undefined, false), (current) => ({
    definition: { ...definitionOf(current), [part]: body[part] },
  }));
  return flagJson(c, await published(c, committed));
}
