// Ties the runtime's global types (cloudflare:workers `env` and `exports`, cloudflare:test) to
// the one Env interface in src/env.ts, instead of a second generated copy.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("./index.ts");
    durableNamespaces: "MetricsAggregator" | "RateLimiter";
  }
  type AppBindings = import("./env.ts").Env;
  interface Env extends AppBindings {}
}

// nodejs_compat provides AsyncLocalStorage; only this much of @types/node is needed here.
declare module "node:async_hooks" {
  export class AsyncLocalStorage<T> {
    run<R>(store: T, fn: () => R): R;
    getStore(): T | undefined;
  }
}
