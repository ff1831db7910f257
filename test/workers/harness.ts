import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { createRoute, z } from "@hono/zod-openapi";
import { inject } from "vitest";
import { createApp } from "../../src/app.ts";
import type { Env } from "../../src/env.ts";
import { tracedFetch } from "../../src/observability/outbound.ts";

export const OPERATOR_TOKEN = "test-operator-token-0123456789";
export const stack = () => inject("stack");

/**
 * The production app plus three probe routes that foundation code has no other way to reach:
 * a JSON body route, a route that throws, and one that calls out through tracedFetch.
 */
export function appWithProbes() {
  const app = createApp();
  app.openapi(
    createRoute({
      method: "post",
      path: "/__probe/echo",
      request: {
        body: {
          required: true,
          content: {
            "application/json": {
              schema: z.object({ name: z.string().min(1), count: z.number().int().nonnegative() }),
            },
          },
        },
      },
      responses: { 200: { description: "echo" } },
    }),
    (c) => c.json(c.req.valid("json"), 200),
  );
  app.get("/__probe/boom", () => {
    throw new Error("database exploded for jane.doe@example.org");
  });
  app.get("/__probe/outbound", async (c) => {
    const res = await tracedFetch(`${stack().receiverUrl}/outbound`, { service: "receiver" });
    return c.json({ status: res.status });
  });
  return app;
}

/** Serves one request and waits for everything it left in waitUntil (metrics, Sentry). */
export async function serve(
  app: ReturnType<typeof createApp>,
  path: string,
  init: RequestInit = {},
  overrides: Partial<Record<string, unknown>> = {},
): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.request(`http://api.test${path}`, init, { ...env, ...overrides } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

export async function received(): Promise<
  { method: string; path: string; headers: Record<string, string>; body: string }[]
> {
  const res = await fetch(`${stack().receiverUrl}/__received`);
  return res.json();
}
