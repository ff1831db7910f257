// Flags: list and search, create, read, replace, patch, delete, the kill switch, archive, and each part of a rule
// (strategies, variants, dependencies, schedule). Every write goes through the one writer (src/flags/store.ts).
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../app-env.ts";
import { createDb } from "../../db/client.ts";
import { ApiError } from "../../errors.ts";
import { createFlag, definitionOf, deleteFlag, type Precondition, updateFlag } from "../../flags/admin.ts";
import type { FlagDefinition } from "../../flags/model.ts";
import {
  DependencySchema,
  Flag,
  FlagCreate,
  FlagFields,
  FlagPatch,
  ScheduleSchema,
  StrategySchema,
  VariantSchema,
} from "../../flags/schema.ts";
import { expectedVersion, type FlagRecord, flagRecord, listFlags, loadFlag } from "../../flags/store.ts";
import { requireAdmin, requireAdminOrViewer } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, PageQuery, pageOf, problem, signedIn } from "../router.ts";
import { actor, KeyParam, published, tags } from "./shared.ts";

const IfMatch = z.object({ "if-match": z.string().optional().describe('The flag\'s ETag, e.g. "3"') });

/** The answers of a write to one flag. */
const flagWriteResponses = {
  200: jsonResponse("The flag (ETag: its new version)", Flag),
  404: problem("No such flag"),
  412: problem("The flag changed since it was read (If-Match)"),
  422: problem("A rule is invalid (the field is named)"),
};

/** A flag, with its version as the ETag (the If-Match of the next write). */
const flagJson = (c: Context<AppEnv>, record: FlagRecord) =>
  c.json(record as z.output<typeof Flag>, 200, { ETag: `"${record.version}"` });

const precondition = (c: Context<AppEnv>, bodyVersion: number | undefined, required: boolean): Precondition => ({
  expected: expectedVersion(c.req.header("if-match"), bodyVersion),
  required,
});

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

const ListQuery = z
  .object({
    q: z.string().trim().max(200).optional().describe("Search in key and description"),
    tag: z.string().optional(),
    archived: z.enum(["false", "true", "all"]).default("false"),
  })
  .extend({
    ...PageQuery.shape,
    // Pages of up to 500 flags, not 200: `flags list` (scripts/admin) reads the whole set 500 at a time.
    page_size: z.coerce.number().int().min(1).max(500).default(50),
  });

export const flagRecordRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/api/admin/flags",
      tags,
      summary: "List and search flags",
      security: signedIn,
      middleware: [requireAdminOrViewer] as const,
      request: { query: ListQuery },
      responses: {
        200: jsonResponse("A page of flags", pageOf(Flag)),
      },
    }),
    async (c) => {
      const { page_size, ...query } = c.req.valid("query");
      const { items, total } = await listFlags(createDb(c.var.config), { ...query, pageSize: page_size });
      return c.json({ items: items as z.output<typeof Flag>[], total, page: query.page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/api/admin/flags",
      tags,
      summary: "Create a flag",
      security: signedIn,
      middleware: [requireAdmin] as const,
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
      middleware: [requireAdminOrViewer] as const,
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
      middleware: [requireAdmin] as const,
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
      middleware: [requireAdmin] as const,
      request: { params: KeyParam, headers: IfMatch, body: jsonBody(FlagPatch) },
      responses: { ...flagWriteResponses, 428: problem("If-Match (or version) is missing") },
    }),
    async (c) => {
      // Only the fields the client sent: zod's defaults must not reset the others. The validator lets an
      // absent body through as {}, which has nothing to read the sent fields from.
      const sent = (await c.req.json().catch(() => undefined)) as Record<string, unknown> | undefined;
      if (!sent) {
        throw new ApiError(
          "VALIDATION_FAILED",
          "The request body is required: a JSON object of the fields to change.",
          {
            errors: [{ field: "body", message: "is required" }],
          },
        );
      }
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
      middleware: [requireAdmin] as const,
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
      middleware: [requireAdmin] as const,
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
      middleware: [requireAdmin] as const,
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
  );

/** PUT /api/admin/flags/{key}/<part>: replace one part of a flag (If-Match optional). */
function partRoute<T extends z.ZodObject>(part: string, body: T) {
  return createRoute({
    method: "put",
    path: `/api/admin/flags/{key}/${part}`,
    tags,
    summary: `Replace a flag's ${part}`,
    security: signedIn,
    middleware: [requireAdmin] as const,
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
