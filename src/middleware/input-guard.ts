import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../app-env.ts";
import { ApiError, type FieldError } from "../errors.ts";
import { findUnsafeJson, hasNul, NUL_MESSAGE } from "../input/unsafe.ts";

const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;

/**
 * 422 naming the field for what no route may receive (see input/unsafe.ts) in path parameters, query
 * parameters and JSON bodies, and for a JSON body that is not an object (every route takes an object).
 * Runs before every route's own middleware and handler, so none of them sees it.
 */
export const refuseUnsafeInput = createMiddleware<AppEnv>(async (c, next) => {
  // A NUL can only reach a URL percent-encoded, so a URL without "%" needs no decoding at all.
  const url = c.req.url.includes("%") ? new URL(c.req.url) : undefined;
  const problem = (url && (unsafePathParameter(c, url) ?? unsafeQueryParameter(url))) ?? (await unsafeJsonBody(c));
  if (problem) {
    throw new ApiError("VALIDATION_FAILED", `The request is invalid: ${problem.field} ${problem.message}.`, {
      errors: [problem],
    });
  }
  await next();
});

// Names the parameter from the matched route template ("/api/admin/flags/:key" gives "path.key").
function unsafePathParameter(c: Context<AppEnv>, url: URL): FieldError | undefined {
  const segments = url.pathname.split("/");
  const template = (matchedRoutes(c).at(-1)?.path ?? "").split("/");
  for (const [i, segment] of segments.entries()) {
    if (!hasNul(decodeSegment(segment))) continue;
    const name = template.length === segments.length ? template[i]?.match(/^:(\w+)/)?.[1] : undefined;
    return { field: name ? `path.${name}` : "path", message: NUL_MESSAGE };
  }
  return undefined;
}

const decodeSegment = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed escapes are the router's business
  }
};

function unsafeQueryParameter(url: URL): FieldError | undefined {
  for (const [name, value] of url.searchParams) {
    if (hasNul(name)) return { field: "query", message: `has a parameter name that ${NUL_MESSAGE}` };
    if (hasNul(value)) return { field: `query.${name}`, message: NUL_MESSAGE };
  }
  return undefined;
}

// OFREP answers a bad body in its own protocol (400 PARSE_ERROR or INVALID_CONTEXT), with the same rules.
const OWN_BODY_PROTOCOL = /^\/ofrep\//;

// Hono caches the parsed body, so the route's validator reads it again for free.
async function unsafeJsonBody(c: Context<AppEnv>): Promise<FieldError | undefined> {
  const media = (c.req.header("content-type") ?? "").split(";")[0]?.trim() ?? "";
  if (!JSON_MEDIA.test(media) || c.req.raw.body === null || OWN_BODY_PROTOCOL.test(c.req.path)) return undefined;
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return undefined; // malformed JSON is answered 400 by the route's validator
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { field: "body", message: "must be a JSON object" };
  }
  return findUnsafeJson(body, "body");
}
