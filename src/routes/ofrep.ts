// The OpenFeature Remote Evaluation Protocol (OFREP, https://github.com/open-feature/protocol, service/openapi.yaml):
// the two core endpoints, so the OpenFeature OFREP providers (server: single-flag evaluation; web: bulk evaluation
// with ETag polling) read our flags unchanged. Evaluation is the same as everywhere else (src/flags/evaluate.ts);
// this file only speaks the protocol.
//
// Wire decisions:
// - Errors of an evaluation are protocol payloads, `application/json` exactly as OFREP shapes them: 404
//   {key, errorCode: FLAG_NOT_FOUND}, 400 {key?, errorCode: PARSE_ERROR | INVALID_CONTEXT | GENERAL}. Everything
//   else (401, 403, 413, 415, 429, 5xx) is the platform's problem+json, which OFREP leaves open (no body for
//   401/403/429; 500's generalErrorResponse has only optional members).
// - A flag whose evaluation failed (reason ERROR) is 400 GENERAL, where the spec lists GENERAL (and flagd sends it).
// - Reasons are ours, verbatim: DISABLED, TARGETING_MATCH, SPLIT and DEFAULT are OpenFeature's standard reasons;
//   OVERRIDE (a per-user override) and SCHEDULED_INACTIVE (outside the flag's schedule) are custom reasons, which
//   OpenFeature allows (reason is an open string) and both providers pass through.
// - `variant` is the flag's variant when one was chosen; Unleash's stand-in "disabled" variant is left out.
// - A null value (a json flag serving a null default) is left out: OFREP's "code default" (ADR 0006), so the
//   caller's own default applies.
// - The bulk ETag hashes the rule-set version, the effective context (the caller's user id included) and the
//   evaluations, so it changes with any flag change, per user, and when a schedule or date rule flips.
import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env.ts";
import { evaluate, evaluateAll } from "../flags/evaluate.ts";
import type { Evaluation, EvaluationContext } from "../flags/model.ts";
import { contextFor, evaluated, exposed, flagCaller, ruleSetFor } from "../flags/request.ts";
import { ContextSchema } from "../flags/schema.ts";
import { findUnsafeJson } from "../input/unsafe.ts";
import { canonicalJson } from "../json.ts";
import { createRouter, jsonResponse, problem, signedIn } from "./router.ts";

const tags = ["OFREP"];

/** Unleash context fields an OpenFeature context may carry as attributes of the same name. */
const KNOWN_FIELDS = ["sessionId", "remoteAddress", "environment", "appName", "currentTime"] as const;

const OfrepContext = z
  .object({
    targetingKey: z
      .string()
      .nullish()
      .describe("Ignored for the caller's own user id, which always applies; null (as Unleash SDKs send it): absent"),
  })
  .catchall(z.unknown())
  .openapi("OfrepContext", {
    description:
      "An OpenFeature evaluation context. sessionId, remoteAddress, environment, appName and currentTime (ISO 8601) " +
      "are Unleash's fields; other string, number and boolean attributes become custom properties (as strings). " +
      "A signed-in caller is always evaluated as itself.",
  });

const EvaluationRequest = z.object({ context: OfrepContext.nullish() }).openapi("OfrepEvaluationRequest");

const Metadata = z
  .object({
    flagVersion: z.number().int().describe("The flag's version"),
    enabled: z.boolean().describe("Whether the flag is on for this context (for non-boolean flags too)"),
  })
  .openapi("OfrepFlagMetadata");

const EvaluationSuccess = z
  .object({
    key: z.string(),
    value: z
      .unknown()
      .optional()
      .describe("boolean, string, number or object; absent: use the code default (a flag with no value here)"),
    reason: z
      .string()
      .describe("DISABLED, TARGETING_MATCH, SPLIT, DEFAULT (OpenFeature's), OVERRIDE or SCHEDULED_INACTIVE (ours)"),
    variant: z.string().optional(),
    metadata: Metadata,
  })
  .openapi("OfrepEvaluationSuccess");

const ERROR_CODES = ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"] as const;
type ErrorCode = (typeof ERROR_CODES)[number] | "FLAG_NOT_FOUND";

const EvaluationFailure = z
  .object({ key: z.string(), errorCode: z.enum(ERROR_CODES), errorDetails: z.string().optional() })
  .openapi("OfrepEvaluationFailure");

const FlagNotFound = z
  .object({ key: z.string(), errorCode: z.literal("FLAG_NOT_FOUND"), errorDetails: z.string().optional() })
  .openapi("OfrepFlagNotFound");

const BulkEvaluationSuccess = z
  .object({
    flags: z.array(z.union([EvaluationSuccess, EvaluationFailure])),
    metadata: z.object({ ruleSetVersion: z.number().int() }),
  })
  .openapi("OfrepBulkEvaluationSuccess");

const BulkEvaluationFailure = z
  .object({ errorCode: z.string(), errorDetails: z.string().optional() })
  .openapi("OfrepBulkEvaluationFailure");

const ofrepJson = <T extends z.ZodType>(description: string, schema: T) => jsonResponse(description, schema);

type Failure = { errorCode: ErrorCode; errorDetails: string };

/** An OFREP error body (`key` for a single flag, none for a bulk request), from middleware and hooks. */
const failureResponse = (c: Context<AppEnv>, status: 400 | 404, failure: Failure, key?: string): Response =>
  c.json(key === undefined ? failure : { key, ...failure }, status);

/** The flag key of a single-flag route (decoded), or undefined on the bulk route. */
const keyOf = (c: Context<AppEnv>): string | undefined => c.req.param("key");

/**
 * Reads the body before the validator does: malformed JSON, or JSON that is not an object, is OFREP's
 * PARSE_ERROR rather than the platform's MALFORMED_JSON problem; a NUL or nesting past the platform's cap
 * (input/unsafe.ts, which the input guard leaves to this route) is INVALID_CONTEXT. No body (and no Content-Type) is an empty context.
 */
const parseBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header("content-type")) {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch (error) {
      // Anything but a syntax error (a body over the limit, a broken stream) is not the client's JSON.
      if (!(error instanceof SyntaxError)) throw error;
      return failureResponse(
        c,
        400,
        { errorCode: "PARSE_ERROR", errorDetails: "The body is not valid JSON." },
        keyOf(c),
      );
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      const errorDetails = 'The body must be a JSON object, like {"context": {"targetingKey": "..."}}.';
      return failureResponse(c, 400, { errorCode: "PARSE_ERROR", errorDetails }, keyOf(c));
    }
    const unsafe = findUnsafeJson(body, "body");
    if (unsafe) {
      const errorDetails = `${unsafe.field} ${unsafe.message}.`;
      return failureResponse(c, 400, { errorCode: "INVALID_CONTEXT", errorDetails }, keyOf(c));
    }
  }
  await next();
};

interface ZodIssueLike {
  path: PropertyKey[];
  message: string;
}

const describeIssues = (prefix: string, issues: ZodIssueLike[]) =>
  issues.map((issue) => `${[prefix, ...issue.path.map(String)].join(".")}: ${issue.message}`).join("; ");

/** Validation failures of the body are the context's: 400 INVALID_CONTEXT, never the platform's 422. */
// biome-ignore lint/suspicious/noExplicitAny: one hook for two routes whose typed responses differ
const invalidContextHook = (result: { success: boolean; error?: { issues: ZodIssueLike[] } }, c: Context<any>): any => {
  if (result.success) return;
  const errorDetails = `The context is invalid: ${describeIssues("body", result.error?.issues ?? [])}.`;
  return failureResponse(c, 400, { errorCode: "INVALID_CONTEXT", errorDetails }, keyOf(c));
};

const primitive = (value: unknown): value is string | number | boolean =>
  typeof value === "string" || (typeof value === "number" && Number.isFinite(value)) || typeof value === "boolean";

/**
 * An OpenFeature context as ours: targetingKey is the user id (replaced by the caller's own in contextFor);
 * Unleash's fields by name; other primitive attributes (and the primitive members of an Unleash-style
 * `properties` object) become string properties. Objects, arrays and nulls are ignored.
 */
function toEvaluationContext(
  given: Record<string, unknown> | null | undefined,
): { context: EvaluationContext } | { errorDetails: string } {
  const context: EvaluationContext = {};
  const properties: Record<string, string> = {};
  const fields = context as Record<string, unknown>;
  for (const [name, value] of Object.entries(given ?? {})) {
    if (value === undefined || value === null) continue;
    if (name === "targetingKey") {
      context.userId = value as string; // a string: the request schema checked it
    } else if ((KNOWN_FIELDS as readonly string[]).includes(name)) {
      if (typeof value !== "string" && typeof value !== "number") {
        return { errorDetails: `The context is invalid: context.${name} must be a string.` };
      }
      fields[name] = String(value);
    } else if (name === "userId") {
      // The caller's own user id always applies; targetingKey is the OpenFeature way to name it.
    } else if (name === "properties" && typeof value === "object" && !Array.isArray(value)) {
      for (const [property, member] of Object.entries(value as Record<string, unknown>)) {
        if (primitive(member)) properties[property] = String(member);
      }
    } else if (primitive(value)) {
      properties[name] = String(value);
    }
  }
  if (Object.keys(properties).length) context.properties = properties;
  const checked = ContextSchema.safeParse(context);
  if (!checked.success) {
    const issues = checked.error.issues.map((issue) => ({
      ...issue,
      // Our field names back to the caller's: userId is its targetingKey, properties.x its attribute x.
      path:
        issue.path[0] === "userId"
          ? ["targetingKey"]
          : issue.path[0] === "properties"
            ? issue.path.slice(1)
            : issue.path,
    }));
    return { errorDetails: `The context is invalid: ${describeIssues("context", issues)}.` };
  }
  return { context };
}

/** One evaluation as OFREP's success or failure item. */
function ofrepEvaluation(
  key: string,
  evaluation: Evaluation,
): z.infer<typeof EvaluationSuccess> | (Failure & { key: string }) {
  if (evaluation.reason === "NOT_FOUND") {
    return { key, errorCode: "FLAG_NOT_FOUND", errorDetails: `No flag is called "${key}".` };
  }
  if (evaluation.reason === "ERROR") {
    return {
      key,
      errorCode: "GENERAL",
      errorDetails: `The flag "${key}" could not be evaluated (its rules or payload do not fit its type).`,
    };
  }
  return {
    key,
    ...(evaluation.value === null ? {} : { value: evaluation.value }),
    reason: evaluation.reason,
    ...(evaluation.variant.enabled ? { variant: evaluation.variant.name } : {}),
    metadata: { flagVersion: evaluation.version, enabled: evaluation.enabled },
  };
}

/**
 * The bulk ETag: the rule-set version, then a hash of the effective context and the evaluations. The time the
 * server filled in is left out of the context (it would change the tag on every request); its effect is not,
 * since the evaluations are part of the hash.
 */
export async function bulkEtag(version: number, context: EvaluationContext, timeGiven: boolean, flags: unknown) {
  const { currentTime, ...rest } = context;
  const material = canonicalJson({ version, context: timeGiven ? { ...rest, currentTime } : rest, flags });
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material)));
  const hex = [...digest.slice(0, 16)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `"${version}-${hex}"`;
}

/** RFC 9110 If-None-Match: `*`, or a list of entity tags compared weakly. */
function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const weak = (tag: string) => tag.trim().replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim() === "*" || weak(tag) === weak(etag));
}

/** The caller's effective context, or the OFREP error for a context that is not acceptable. */
function effectiveContext(c: Context<AppEnv>, body: z.infer<typeof EvaluationRequest>) {
  const mapped = toEvaluationContext(body.context);
  if ("errorDetails" in mapped) return mapped;
  return { context: contextFor(c, mapped.context), timeGiven: mapped.context.currentTime !== undefined };
}

const notModified = { description: "The evaluations are unchanged since the ETag sent in If-None-Match" };
const noStore = { "Cache-Control": "private, no-cache" };

export const ofrepRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/ofrep/v1/evaluate/flags/{key}",
      tags,
      summary: "OFREP: evaluate one flag for a context (the caller's own user id always applies)",
      description:
        "The OpenFeature Remote Evaluation Protocol's single-flag evaluation, for server-side OFREP providers.",
      security: signedIn,
      middleware: [flagCaller, parseBody] as const,
      request: {
        params: z.object({ key: z.string().min(1).describe("The flag key (URL-encoded)") }),
        body: { required: false, content: { "application/json": { schema: EvaluationRequest } } },
      },
      responses: {
        200: ofrepJson("The evaluation", EvaluationSuccess),
        400: ofrepJson(
          "Malformed body (PARSE_ERROR), bad context (INVALID_CONTEXT), or a failed evaluation (GENERAL)",
          EvaluationFailure,
        ),
        401: problem("Not signed in"),
        404: ofrepJson("No such flag (FLAG_NOT_FOUND)", FlagNotFound),
        413: problem("Body too large"),
        415: problem("Body is not JSON"),
        503: problem(
          "The database did not answer: NOT_READY when the caller cannot be signed in without it (an API key)",
        ),
      },
    }),
    async (c) => {
      const { key } = c.req.valid("param");
      const effective = effectiveContext(c, c.req.valid("json"));
      if ("errorDetails" in effective) {
        return c.json({ key, errorCode: "INVALID_CONTEXT" as const, errorDetails: effective.errorDetails }, 400);
      }
      const { context } = effective;
      const evaluation = evaluate(await ruleSetFor(c), key, context);
      const item = ofrepEvaluation(key, evaluation);
      if ("errorCode" in item && item.errorCode === "FLAG_NOT_FOUND") {
        return c.json({ ...item, errorCode: "FLAG_NOT_FOUND" as const }, 404);
      }
      evaluated(c, "ofrep", 1);
      exposed(c, context, [[key, evaluation]]);
      if ("errorCode" in item) return c.json(item as z.infer<typeof EvaluationFailure>, 400);
      return c.json(item, 200);
    },
    invalidContextHook,
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/ofrep/v1/evaluate/flags",
      tags,
      summary: "OFREP: evaluate every flag for a context (ETag; If-None-Match answers 304)",
      description:
        "The OpenFeature Remote Evaluation Protocol's bulk evaluation, for client-side OFREP providers. The ETag " +
        "changes with the rule-set version, the effective context (so per user) and the evaluations themselves.",
      security: signedIn,
      middleware: [flagCaller, parseBody] as const,
      request: {
        headers: z.object({ "if-none-match": z.string().optional().describe("An ETag of an earlier answer") }),
        body: { required: false, content: { "application/json": { schema: EvaluationRequest } } },
      },
      responses: {
        200: {
          ...ofrepJson("Every flag's evaluation", BulkEvaluationSuccess),
          headers: { ETag: { schema: { type: "string" }, description: "Send it back as If-None-Match" } },
        },
        304: notModified,
        400: ofrepJson("Malformed body (PARSE_ERROR) or bad context (INVALID_CONTEXT)", BulkEvaluationFailure),
        401: problem("Not signed in"),
        413: problem("Body too large"),
        415: problem("Body is not JSON"),
        503: problem(
          "The database did not answer: NOT_READY when the caller cannot be signed in without it (an API key)",
        ),
      },
    }),
    async (c) => {
      const effective = effectiveContext(c, c.req.valid("json"));
      if ("errorDetails" in effective) {
        return failureResponse(c, 400, { errorCode: "INVALID_CONTEXT", errorDetails: effective.errorDetails });
      }
      const { context, timeGiven } = effective;
      const ruleSet = await ruleSetFor(c);
      const evaluations = Object.entries(evaluateAll(ruleSet, context));
      // Counted even when answered 304: the evaluations were made (for the ETag).
      evaluated(c, "ofrep", evaluations.length);
      const flags = evaluations.map(([key, evaluation]) => ofrepEvaluation(key, evaluation));
      const etag = await bulkEtag(ruleSet.version, context, timeGiven, flags);
      // Not modified: the caller already holds these evaluations, so nothing is served (and no exposure counted).
      if (noneMatch(c.req.valid("header")["if-none-match"], etag)) return c.body(null, 304, { ETag: etag, ...noStore });
      exposed(c, context, evaluations);
      return c.json(
        {
          flags: flags as z.infer<typeof BulkEvaluationSuccess>["flags"],
          metadata: { ruleSetVersion: ruleSet.version },
        },
        200,
        { ETag: etag, ...noStore },
      );
    },
    invalidContextHook,
  );
