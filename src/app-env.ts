import type { Toucan } from "toucan-js";
import type { Principal } from "./auth/principal.ts";
import type { Config, Env } from "./env.ts";
import type { TraceContext } from "./observability/trace.ts";

/** Hono's type parameter for the whole app: bindings plus per-request variables. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    config: Config;
    requestId: string;
    trace: TraceContext;
    userId?: string;
    /** Set by requireUser / requireRole once the caller is authenticated. */
    principal?: Principal;
    sentry?: Toucan;
  };
}
