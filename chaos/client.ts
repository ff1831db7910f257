// The runner's HTTP client: one request, never throwing; a network error or timeout is status 0.

export interface Reply {
  status: number;
  ms: number;
  // biome-ignore lint/suspicious/noExplicitAny: parsed loosely; checks read the fields they need
  json: any;
  text: string;
  error?: string;
}

export async function request(
  base: string,
  path: string,
  init: { method?: string; token?: string; json?: unknown; form?: FormData; timeoutMs?: number } = {},
): Promise<Reply> {
  const started = Date.now();
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  let body: string | FormData | undefined;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  } else if (init.form) body = init.form;
  try {
    const res = await fetch(`${base}${path}`, {
      method: init.method ?? (body ? "POST" : "GET"),
      headers,
      body,
      signal: AbortSignal.timeout(init.timeoutMs ?? 45_000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, ms: Date.now() - started, json, text };
  } catch (error) {
    return { status: 0, ms: Date.now() - started, json: undefined, text: "", error: (error as Error).name };
  }
}

/** The seeded PRNG of the bench workloads (mulberry32): the same seed gives the same schedule and choices. */
export { prng as seededRandom } from "../bench/flags/workload.ts";
