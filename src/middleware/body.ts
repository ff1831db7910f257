import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../app-env.ts";
import type { Config } from "../config.ts";
import { ApiError } from "../errors.ts";

/** What a route's body may be: its media types and its size limit. */
export interface BodyRule {
  media: string[];
  maxBytes: (config: Config) => number;
}

const JSON_RULE: BodyRule = { media: ["application/json"], maxBytes: (config) => config.MAX_BODY_BYTES };
const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;
const RULE = Symbol("bodyRule");

type RuleCarrier = MiddlewareHandler<AppEnv> & { [RULE]?: BodyRule };

/**
 * Route middleware for a route whose body is not plain JSON within MAX_BODY_BYTES (uploads, JSON Lines
 * imports, audio, small JSON bodies). It does nothing itself: limitBody and requireBodyMedia, which run
 * before any route middleware so the input guard never reads past a limit, find it on the matched route.
 */
export function acceptsBody(rule: BodyRule): MiddlewareHandler<AppEnv> {
  const declared: RuleCarrier = (_c, next) => next();
  declared[RULE] = rule;
  return declared;
}

const ruleOf = (c: Context<AppEnv>) => {
  for (const route of matchedRoutes(c)) {
    const rule = (route.handler as RuleCarrier)[RULE];
    if (rule) return rule;
  }
  return JSON_RULE;
};

const hasBody = (req: Request) =>
  req.body !== null &&
  (req.headers.get("content-length") ?? "") !== "0" &&
  req.method !== "GET" &&
  req.method !== "HEAD";

const accepts = (rule: BodyRule, media: string) =>
  rule.media.some(
    (allowed) => allowed === media.toLowerCase() || (allowed === "application/json" && JSON_MEDIA.test(media)),
  );

/** 415 for a body whose Content-Type the route does not take. */
export const requireBodyMedia = createMiddleware<AppEnv>(async (c, next) => {
  if (hasBody(c.req.raw)) {
    const rule = ruleOf(c);
    const media = (c.req.header("content-type") ?? "").split(";")[0]?.trim() ?? "";
    if (!accepts(rule, media)) {
      throw new ApiError(
        "UNSUPPORTED_MEDIA_TYPE",
        `Send the body as ${rule.media.join(" or ")}${media ? `, not ${media}` : " (Content-Type is missing)"}.`,
      );
    }
  }
  await next();
});

/** 413 once a body exceeds its route's limit, whether or not Content-Length announced it. */
export const limitBody = createMiddleware<AppEnv>((c, next) => {
  const maxSize = ruleOf(c).maxBytes(c.var.config);
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError("PAYLOAD_TOO_LARGE", `The body exceeds the limit of ${maxSize} bytes.`, {
        extensions: { limitBytes: maxSize },
      });
    },
  })(c, next);
});
