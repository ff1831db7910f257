import { OpenAPIHono, type RouteConfig, z } from "@hono/zod-openapi";
import type { AppEnv } from "../app-env.ts";
import { ApiError, type FieldError } from "../errors.ts";
import { requireAdmin, requireAdminOrViewer } from "../middleware/auth.ts";

interface ZodLikeIssue {
  path: PropertyKey[];
  message: string;
}

/** Turns zod issues into per-field errors ("body.email", "query.page"). */
export function fieldErrors(target: string, issues: ZodLikeIssue[]): FieldError[] {
  return issues.map((issue) => ({
    field: [target, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
}

/**
 * Every router is an OpenAPIHono whose validation failures become 422 problems with field errors, and whose every
 * operation also lists the problems the app-wide middleware can answer on it (withSharedProblems).
 */
export const createRouter = () => {
  const router = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (result.success) return;
      const target = result.target === "json" ? "body" : result.target;
      const errors = fieldErrors(target, result.error.issues);
      const summary = errors.map((e) => `${e.field} ${e.message}`).join("; ");
      throw new ApiError("VALIDATION_FAILED", `The request ${target} is invalid: ${summary}.`, { errors });
    },
  });
  const openapi = router.openapi as (route: RouteConfig, ...rest: unknown[]) => unknown;
  router.openapi = ((route: RouteConfig, ...rest: unknown[]) =>
    openapi(withSharedProblems(route), ...rest)) as typeof router.openapi;
  return router;
};

const ROLE_GUARDS = new Set<unknown>([requireAdmin, requireAdminOrViewer]);

/**
 * The route with the problems the app-wide middleware can answer on it added where the route does not describe them
 * itself: 422 from the input guard (a NUL, nesting over 64 levels, JSON that is not an object), 500 (a bug, or
 * BAD_ENVIRONMENT), 503 (Postgres did not answer), 401 and 502 (the revocation store did not answer) behind
 * credentials, 403 behind a role guard, and for methods other than GET 413 (over the route's limit) and 415 (a media
 * type the route does not take), plus 400 for malformed JSON where the route reads a JSON body.
 * test/workers/openapi-responses.ts holds the suites' responses to them.
 */
function withSharedProblems(route: RouteConfig): RouteConfig {
  const shared: Record<string, ReturnType<typeof problem>> = {
    422: problem(
      "VALIDATION_FAILED: input no route accepts (a NUL, nesting over 64 levels) or a field fails its schema",
    ),
    500: problem("INTERNAL (quote the requestId) or BAD_ENVIRONMENT"),
    503: problem("DATABASE_UNAVAILABLE: Postgres did not answer (Retry-After)"),
  };
  if (route.security?.length) {
    shared[401] = problem("UNAUTHORIZED: missing or wrong credentials");
    shared[502] = problem("UPSTREAM_UNAVAILABLE: the revocation store (Redis) did not answer (Retry-After)");
  }
  if ([route.middleware ?? []].flat().some((guard) => ROLE_GUARDS.has(guard))) {
    shared[403] = problem("FORBIDDEN: signed in without the role the route needs");
  }
  if (route.method !== "get") {
    shared[413] = problem("PAYLOAD_TOO_LARGE: the body is over the route's limit (limitBytes)");
    shared[415] = problem("UNSUPPORTED_MEDIA_TYPE: the body's Content-Type is not one the route takes");
    const body = route.request?.body;
    if (body && "content" in body && body.content["application/json"]) {
      shared[400] = problem("MALFORMED_JSON: the body is not valid JSON");
    }
  }
  return { ...route, responses: { ...shared, ...route.responses } };
}

const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    detail: z.string(),
    code: z.string(),
    requestId: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .catchall(z.unknown())
  .openapi("Problem");

/** An OpenAPI response entry for an RFC 9457 problem. */
export const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: Problem } },
});

/** A JSON request body entry, required. */
export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

/** A JSON response entry. */
export const jsonResponse = <T extends z.ZodType>(description: string, schema: T) => ({
  description,
  content: { "application/json": { schema } },
});

/** The query of every page-numbered list route, which `.extend()`s it with its filters: `page` from 1, `page_size` 1-200. */
export const PageQuery = z.object({
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(200).default(50),
});

/** A page of a list route's reply: its items, the count of every match, and the page asked for. */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    total: z.number().int(),
    page: z.number().int(),
    page_size: z.number().int(),
  });

/** `security` of routes behind requireUser / requireRole: an access token or an API key. */
export const signedIn: Record<string, string[]>[] = [{ bearerAuth: [] }, { apiKey: [] }];

/** The credentials routes name in their `security`, for the OpenAPI document. */
export function describeSecuritySchemes(app: OpenAPIHono<AppEnv>): void {
  const register = app.openAPIRegistry.registerComponent.bind(app.openAPIRegistry, "securitySchemes");
  register("bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "An access token from POST /api/auth/login or /api/auth/refresh.",
  });
  register("apiKey", {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
    description: "A key from /api/users/me/api-keys.",
  });
  register("operatorToken", { type: "http", scheme: "bearer", description: "The OPERATOR_TOKEN secret." });
  register("bootstrapToken", { type: "http", scheme: "bearer", description: "The ADMIN_BOOTSTRAP_TOKEN secret." });
}
