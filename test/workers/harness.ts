import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { createRoute, z } from "@hono/zod-openapi";
import { inject } from "vitest";
import { createApp } from "../../src/app.ts";
import type { Env } from "../../src/env.ts";
import { tracedFetch } from "../../src/observability/outbound.ts";
import { type OpenApiDocument, responseContract } from "./openapi-responses.ts";

// The one home of the request, socket and env-override helpers: `serve` already lived here and every suite imports it.

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
  app: App,
  path: string,
  init: RequestInit = {},
  overrides: Partial<Record<string, unknown>> = {},
): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.request(`http://api.test${path}`, init, { ...env, ...overrides } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

/** The app the suites share (one instance, so its in-memory state is the same for every helper). */
export const app = createApp();
export type App = ReturnType<typeof createApp>;

/** The address requests come from unless `ip` says otherwise (register, login and refresh are limited per address). */
export const DEFAULT_IP = "203.0.113.7";

export interface CallOptions {
  /** Sent as a JSON body with content-type application/json. */
  json?: unknown;
  /** Any other body (a FormData, NDJSON text...), sent as is; set its content-type in `headers` if needed. */
  body?: BodyInit;
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
  /** Sent as `x-api-key`. */
  apiKey?: string;
  /** cf-connecting-ip; DEFAULT_IP when absent. */
  ip?: string;
  /** Extra headers; they win over the ones the options above set. */
  headers?: Record<string, string>;
  /** Binding and variable overrides (they reach the Worker code, not Durable Objects). */
  overrides?: Partial<Record<string, unknown>>;
  /** Another app than the shared one (e.g. a fresh instance, with empty in-memory caches). */
  app?: App;
  /**
   * The path is deliberately not in /openapi.json (an unknown route), so the response is not checked against the
   * document. Every other response `call` returns must be one its operation declares, with a body its schema accepts.
   */
  undocumented?: true;
}

function headersFor(options: CallOptions): Record<string, string> {
  const headers: Record<string, string> = { "cf-connecting-ip": options.ip ?? DEFAULT_IP };
  if (options.json !== undefined) headers["content-type"] = "application/json";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.apiKey) headers["x-api-key"] = options.apiKey;
  return { ...headers, ...options.headers };
}

/** One request through the app, as `call` builds it, returning the raw Response (for streams, SSE, raw bodies). */
export function callRaw(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const body = options.json !== undefined ? JSON.stringify(options.json) : options.body;
  return serve(
    options.app ?? app,
    path,
    { method, headers: headersFor(options), ...(body !== undefined ? { body } : {}) },
    options.overrides,
  );
}

/** Holds each response `call` returns to its operation in the app's own /openapi.json (fetched once per file). */
const checkResponse = responseContract(
  async () => (await (await serve(app, "/openapi.json")).json()) as OpenApiDocument,
);

/**
 * One request through the app; `body` is the parsed JSON, or the text when it is not JSON (undefined when empty).
 * Fails when the response is not one /openapi.json declares for the operation (see test/workers/openapi-responses.ts).
 */
export async function call(method: string, path: string, options: CallOptions = {}) {
  const res = await callRaw(method, path, options);
  const text = await res.text();
  let body: unknown;
  let json = true;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
    json = false;
  }
  const contentType = res.headers.get("content-type");
  await checkResponse(
    { method, path, status: res.status, contentType, body: json ? body : undefined },
    { undocumented: options.undocumented },
  );
  // biome-ignore lint/suspicious/noExplicitAny: assertions read arbitrary JSON
  return { status: res.status, headers: res.headers, body: body as any };
}

export type CallResult = Awaited<ReturnType<typeof call>>;

export interface SocketOptions extends Omit<CallOptions, "json" | "body"> {
  /** Sent as sec-websocket-protocol. */
  protocols?: string[];
  /** Sees every message, parsed, as it arrives (before it is stored). */
  onMessage?: (message: SocketMessage) => void;
}

// biome-ignore lint/suspicious/noExplicitAny: socket messages, checked by the assertions
export type SocketMessage = Record<string, any>;

/**
 * Opens a WebSocket through the app (GET with upgrade: websocket). `res` is the upgrade response (its status tells a
 * refusal); when it upgraded, the socket is accepted and every message is parsed as JSON into `messages`.
 */
export async function openSocket(path: string, options: SocketOptions = {}) {
  const headers: Record<string, string> = { upgrade: "websocket" };
  if (options.protocols?.length) headers["sec-websocket-protocol"] = options.protocols.join(", ");
  const res = await callRaw("GET", path, { ...options, headers: { ...headers, ...options.headers } });
  const socket = res.webSocket;
  const messages: SocketMessage[] = [];
  let closed: { code: number; reason: string } | undefined;
  if (socket) {
    socket.accept();
    socket.addEventListener("message", (event) => {
      const parsed = JSON.parse(event.data as string);
      options.onMessage?.(parsed);
      messages.push(parsed);
    });
    socket.addEventListener("close", (event) => {
      closed = { code: event.code, reason: event.reason };
    });
  }
  /** The first message (received so far or later) that matches; rejects after timeoutMs. */
  const until = async (match: (m: SocketMessage) => boolean, timeoutMs = 10_000): Promise<SocketMessage> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = messages.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching message; got ${messages.map((m) => m.type).join(", ")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const send = (message: object | string) =>
    socket?.send(typeof message === "string" ? message : JSON.stringify(message));
  /** The close the server sent, once it arrived (undefined when none came within timeoutMs). */
  const closing = async (timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!closed && Date.now() <= deadline) await new Promise((r) => setTimeout(r, 20));
    return closed;
  };
  return { res, socket, messages, until, send, closing, closed: () => closed };
}

export async function received(): Promise<
  { method: string; path: string; headers: Record<string, string>; body: string }[]
> {
  const res = await fetch(`${stack().receiverUrl}/__received`);
  return res.json();
}
