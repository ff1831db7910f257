import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { describeConfigIssues } from "../config.ts";
import { loadConfig } from "../env.ts";
import { ApiError } from "../errors.ts";
import { log, setLogLevel } from "../observability/log.ts";
import { setDefaultOutboundTimeout } from "../observability/outbound.ts";

let reported = false;

/** Validates bindings and variables once; a bad environment answers 500 BAD_ENVIRONMENT naming them. */
export const environment = createMiddleware<AppEnv>(async (c, next) => {
  const result = loadConfig(c.env);
  if (!result.ok) {
    const detail = `Invalid environment: ${describeConfigIssues(result.issues)}.`;
    if (!reported) {
      reported = true;
      log("error", "bad environment", { issues: result.issues });
    }
    throw new ApiError("BAD_ENVIRONMENT", detail, {
      extensions: { variables: result.issues.map((i) => i.variable) },
    });
  }
  setLogLevel(result.config.LOG_LEVEL);
  setDefaultOutboundTimeout(result.config.OUTBOUND_TIMEOUT_MS);
  c.set("config", result.config);
  await next();
});
