import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../app-env.ts";
import { ApiError, type FieldError } from "../errors.ts";

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

/** Every router is an OpenAPIHono whose validation failures become 422 problems with field errors. */
export const createRouter = () =>
  new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (result.success) return;
      const target = result.target === "json" ? "body" : result.target;
      const errors = fieldErrors(target, result.error.issues);
      const summary = errors.map((e) => `${e.field} ${e.message}`).join("; ");
      throw new ApiError("VALIDATION_FAILED", `The request ${target} is invalid: ${summary}.`, { errors });
    },
  });
