import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";

const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;

/**
 * Route templates whose bodies are not JSON (uploads, JSONL imports, audio). Everything else
 * that carries a body must send application/json.
 */
export const nonJsonBodyRoutes = new Set<string>();

const hasBody = (req: Request) =>
  req.body !== null &&
  (req.headers.get("content-length") ?? "") !== "0" &&
  req.method !== "GET" &&
  req.method !== "HEAD";

/** 415 for a body that is not JSON on a JSON route. */
export const requireJsonBody = createMiddleware<AppEnv>(async (c, next) => {
  if (hasBody(c.req.raw)) {
    const route = matchedRoutes(c).at(-1)?.path ?? "";
    const media = (c.req.header("content-type") ?? "").split(";")[0]?.trim() ?? "";
    if (!nonJsonBodyRoutes.has(route) && !JSON_MEDIA.test(media)) {
      throw new ApiError(
        "UNSUPPORTED_MEDIA_TYPE",
        `Send the body as application/json${media ? `, not ${media}` : " (Content-Type is missing)"}.`,
      );
    }
  }
  await next();
});

/** 413 once a body exceeds MAX_BODY_BYTES, whether or not Content-Length announced it. */
export const limitBody = createMiddleware<AppEnv>((c, next) =>
  bodyLimit({
    maxSize: c.var.config.MAX_BODY_BYTES,
    onError: () => {
      throw new ApiError("PAYLOAD_TOO_LARGE", `The body exceeds the limit of ${c.var.config.MAX_BODY_BYTES} bytes.`, {
        extensions: { limitBytes: c.var.config.MAX_BODY_BYTES },
      });
    },
  })(c, next),
);
