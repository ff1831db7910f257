// Issue 6: the official `openai` SDK's realtime WebSocket client (OpenAIRealtimeWS, Node `ws`) against
// `npm run dev -- --https`. The SDK only dials wss:, so the app is served with wrangler's local HTTPS and its
// self-signed certificate; the client relaxes certificate checks for its own sockets only (ws option
// rejectUnauthorized: false), never process-wide. Local mode (no OPENAI_API_KEY): answers come from the
// knowledge base through the extractive composer.
import { randomUUID } from "node:crypto";
import OpenAI from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import type { RealtimeServerEvent } from "openai/resources/realtime/realtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootstrapAdmin,
  type DevServer,
  insecureRequest,
  registerUser,
  startDevServer,
  withDevLog,
} from "./dev-server.ts";

const BOOTSTRAP_TOKEN = `sdk-test-bootstrap-${randomUUID()}`;
// Eight letters (digits mapped to g-p): part of a made-up word, so it must not split into tokens.
const run = randomUUID()
  .slice(0, 8)
  .replace(/\d/g, (d) => "ghijklmnop"[Number(d)] as string);
// A made-up word, so the answer can only come from the uploaded document.
const WORD = `quillorin${run}`;
const FACT = `The ${WORD} clinic keeps its on-call pharmacist at extension 4417.`;
const DOCUMENT = [
  `${WORD} clinic handbook.`,
  FACT,
  `Outside office hours the ${WORD} clinic pharmacist can also be paged through the hospital switchboard.`,
  `Visitors to the ${WORD} clinic sign in at the east entrance.`,
].join(" ");
const QUESTION = `What extension is the on-call pharmacist of the ${WORD} clinic?`;
const EVENT_TIMEOUT_MS = 20_000;

// The OpenAI Realtime GA schema check the Workers suites use. Loaded by a computed specifier: that module imports
// its JSON fixtures without `with { type: "json" }`, which tsconfig.node.json (NodeNext) rejects (TS1543) for any
// file reachable from test/node; vitest loads it fine.
const CONFORMANCE = "../realtime-conformance.ts";
const { validateServerEvent } = (await import(/* @vite-ignore */ CONFORMANCE)) as {
  validateServerEvent(event: unknown): string[];
};

let server: DevServer | undefined;
let userToken = "";
let documentId = "";
const timings: Record<string, number> = {};
let answer = "";

async function api(path: string, init: Parameters<typeof insecureRequest>[1] = {}) {
  return insecureRequest(`${(server as DevServer).url}${path}`, init);
}

/** Multipart upload the way a browser would send it (Request serialises the FormData and its boundary). */
async function uploadText(token: string, title: string, text: string) {
  const form = new FormData();
  form.set("file", new File([text], `${title}.txt`, { type: "text/plain" }));
  form.set("title", title);
  form.set("source_type", `sdk-${run}`);
  const encoded = new Request("https://encode.invalid/", { method: "POST", body: form });
  return api("/api/admin/kb/documents", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": encoded.headers.get("content-type") as string },
    body: new Uint8Array(await encoded.arrayBuffer()),
  });
}

async function untilIndexed(token: string, id: string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  for (;;) {
    // A slow answer (the queue consumer and the API share PGlite's single backend) is retried, not fatal.
    const asked = Date.now();
    const res = await api(`/api/admin/kb/documents/${id}`, {
      headers: { authorization: `Bearer ${token}` },
      timeoutMs: 30_000,
    }).catch((error: Error) => error);
    timings.statusPollMaxMs = Math.max(timings.statusPollMaxMs ?? 0, Date.now() - asked);
    if (res instanceof Error) {
      last = res.message;
      timings.statusPollFailures = (timings.statusPollFailures ?? 0) + 1;
    } else {
      if (res.status !== 200) throw new Error(`document ${id}: ${res.status} ${res.text}`);
      if (res.json.status === "ready") return res.json;
      if (res.json.status === "failed") throw new Error(`document ${id} failed: ${res.json.error}`);
      last = res.text;
    }
    if (Date.now() > deadline) throw new Error(`document ${id} not ready in ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The SDK's client, as a user writes it, but pointed at the dev server. */
const sdkClient = (apiKey: string, path = "/v1") =>
  new OpenAI({ apiKey, baseURL: `${(server as DevServer).url}${path}`, maxRetries: 0 });

interface Observed {
  rt: OpenAIRealtimeWS;
  events: RealtimeServerEvent[];
  errors: Error[];
  /** Server events that do not match the OpenAI Realtime GA schemas. */
  problems: string[];
  closed: Promise<{ code: number; reason: string }>;
  next<T extends RealtimeServerEvent["type"]>(
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<RealtimeServerEvent, { type: T }>>;
}

/** Opens the SDK's realtime client; every event it emits is recorded and checked against the GA schemas. */
function connect(client: OpenAI, options: { relaxTls?: boolean; path?: string } = {}): Observed {
  const rt = new OpenAIRealtimeWS(
    {
      model: "gpt-realtime",
      // The only relaxation: this client's sockets accept the self-signed certificate.
      options: options.relaxTls === false ? {} : { rejectUnauthorized: false },
    },
    client,
  );
  const events: RealtimeServerEvent[] = [];
  const errors: Error[] = [];
  const problems: string[] = [];
  rt.on("event", (event) => {
    events.push(event);
    for (const problem of validateServerEvent(event)) problems.push(`${event.type}: ${problem}`);
  });
  rt.on("error", (error) => errors.push(error));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    rt.socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const next: Observed["next"] = (type, timeoutMs = EVENT_TIMEOUT_MS) =>
    new Promise((resolve, reject) => {
      const seen = events.find((e) => e.type === type);
      if (seen) return resolve(seen as never);
      const timer = setTimeout(() => {
        rt.off(type, onEvent as never);
        reject(
          new Error(
            `no ${type} in ${timeoutMs} ms; events: ${events.map((e) => e.type).join(", ") || "none"}; errors: ${errors.map((e) => e.message).join(" | ") || "none"}`,
          ),
        );
      }, timeoutMs);
      const onEvent = (event: RealtimeServerEvent) => {
        clearTimeout(timer);
        resolve(event as never);
      };
      rt.once(type, onEvent as never);
    });
  return { rt, events, errors, problems, closed, next };
}

async function closeAndWait(observed: Observed) {
  if (observed.rt.socket.readyState === observed.rt.socket.OPEN) observed.rt.close();
  const settled = await Promise.race([
    observed.closed,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000)),
  ]);
  if (!settled) observed.rt.socket.terminate();
  return settled;
}

beforeAll(async () => {
  const t0 = Date.now();
  server = await startDevServer({
    https: true,
    variables: { ADMIN_BOOTSTRAP_TOKEN: BOOTSTRAP_TOKEN, LOG_LEVEL: "warn" },
  });
  timings.devServerReadyMs = server.startupMs;
  await withDevLog(server, prepare);
  timings.beforeAllMs = Date.now() - t0;
}, 420_000);

/** An admin (bootstrap token), one indexed document, and a plain user whose access token the SDK uses. */
async function prepare() {
  const adminToken = await bootstrapAdmin(server as DevServer, BOOTSTRAP_TOKEN, `sdk-admin-${run}@example.test`);

  const t1 = Date.now();
  const uploaded = await uploadText(adminToken, `${WORD} clinic handbook`, DOCUMENT);
  if (uploaded.status !== 202) throw new Error(`upload: ${uploaded.status} ${uploaded.text}`);
  documentId = uploaded.json.id;
  await untilIndexed(adminToken, documentId);
  timings.uploadToIndexedMs = Date.now() - t1;

  userToken = (await registerUser(server as DevServer, `sdk-user-${run}@example.test`)).token;
}

afterAll(async () => {
  const t = Date.now();
  await server?.stop();
  timings.stopMs = Date.now() - t;
  console.log(`realtime-sdk timings (ms): ${JSON.stringify(timings)}\nanswer: ${JSON.stringify(answer)}`);
}, 60_000);

describe("the official openai SDK's realtime WebSocket client against npm run dev -- --https", () => {
  it("serves TLS with a self-signed certificate: the SDK refuses it unless the client relaxes the check", async () => {
    const strict = connect(sdkClient(userToken), { relaxTls: false });
    expect(strict.rt.url.href).toBe(`wss://127.0.0.1:${(server as DevServer).port}/v1/realtime?model=gpt-realtime`);
    await strict.closed;
    expect(strict.events).toEqual([]);
    expect(strict.errors.length).toBeGreaterThan(0);
    const cause = (strict.errors[0] as Error & { cause?: { code?: string } }).cause;
    expect(cause?.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT_/);
  });

  it("answers a text turn grounded in the uploaded document, streamed as output_text deltas, with usage", async () => {
    const t0 = Date.now();
    const s = connect(sdkClient(userToken));
    try {
      const created = await s.next("session.created");
      timings.handshakeToSessionCreatedMs = Date.now() - t0;
      expect(created.session).toMatchObject({ type: "realtime" });

      s.rt.send({
        type: "session.update",
        session: {
          type: "realtime",
          instructions: "Answer from the clinic handbook, briefly.",
          output_modalities: ["text"],
        },
      });
      const updated = await s.next("session.updated");
      expect(updated.session).toMatchObject({
        type: "realtime",
        instructions: "Answer from the clinic handbook, briefly.",
        output_modalities: ["text"],
      });

      s.rt.send({
        type: "conversation.item.create",
        item: { type: "message", role: "user", content: [{ type: "input_text", text: QUESTION }] },
      });
      const added = await s.next("conversation.item.added");
      expect(added.item).toMatchObject({ type: "message", role: "user" });

      const t1 = Date.now();
      s.rt.send({ type: "response.create" });
      const done = await s.next("response.done", 45_000);
      timings.responseCreateToDoneMs = Date.now() - t1;

      const responseCreated = s.events.find((e) => e.type === "response.created");
      expect(responseCreated).toBeDefined();
      const deltas = s.events.flatMap((e) => (e.type === "response.output_text.delta" ? [e] : []));
      expect(deltas.length).toBeGreaterThan(0);
      const text = deltas.map((d) => d.delta).join("");
      answer = text;
      expect(text).toContain("4417");
      expect(text.toLowerCase()).toContain(WORD);

      // Every delta belongs to the response and item the SDK was told about.
      const responseId = done.response.id;
      expect(responseCreated && "response" in responseCreated ? responseCreated.response.id : undefined).toBe(
        responseId,
      );
      for (const d of deltas) expect(d.response_id).toBe(responseId);
      const textDone = s.events.find((e) => e.type === "response.output_text.done");
      expect(textDone && "text" in textDone ? textDone.text : undefined).toBe(text);

      expect(done.response.status).toBe("completed");
      const message = done.response.output?.[0];
      expect(message).toMatchObject({ type: "message", role: "assistant", status: "completed" });
      expect(message && "content" in message ? message.content?.[0] : undefined).toMatchObject({
        type: "output_text",
        text,
      });
      const usage = done.response.usage;
      expect(usage?.input_tokens).toBeGreaterThan(0);
      expect(usage?.output_tokens).toBeGreaterThan(0);
      expect(usage?.total_tokens).toBe((usage?.input_tokens ?? 0) + (usage?.output_tokens ?? 0));
      // Citations ride in the response metadata (string -> string), naming the uploaded document.
      const citations = JSON.parse(String(done.response.metadata?.citations ?? "[]"));
      expect(citations.map((c: { d: string }) => c.d)).toContain(documentId);

      // The stream a Realtime client expects, in order.
      const order: string[] = s.events.map((e) => e.type);
      const at = (type: string) => order.indexOf(type);
      expect(at("session.created")).toBe(0);
      expect(at("response.created")).toBeLessThan(at("response.output_item.added"));
      expect(at("response.output_item.added")).toBeLessThan(at("response.content_part.added"));
      expect(at("response.content_part.added")).toBeLessThan(at("response.output_text.delta"));
      expect(order.lastIndexOf("response.output_text.delta")).toBeLessThan(at("response.output_text.done"));
      expect(at("response.output_text.done")).toBeLessThan(at("response.content_part.done"));
      expect(at("response.content_part.done")).toBeLessThan(at("response.output_item.done"));
      expect(order.at(-1)).toBe("response.done");

      // The SDK raised nothing, and every event it delivered matches the OpenAI Realtime GA schemas.
      expect(s.errors.map((e) => e.message)).toEqual([]);
      expect(s.events.filter((e) => e.type === "error")).toEqual([]);
      expect(s.problems).toEqual([]);
    } finally {
      const closed = await closeAndWait(s);
      expect(closed?.code).toBe(1000);
    }
  }, 90_000);

  it("also reaches the session at /api/voice/realtime when baseURL is /api/voice", async () => {
    const s = connect(sdkClient(userToken, "/api/voice"));
    try {
      expect(s.rt.url.pathname).toBe("/api/voice/realtime");
      await s.next("session.created");
      expect(s.errors).toEqual([]);
      expect(s.problems).toEqual([]);
    } finally {
      await closeAndWait(s);
    }
  }, 30_000);

  it("is refused at the handshake with a bad token: the SDK reports the 401 and never sees a session", async () => {
    const s = connect(sdkClient(`not-a-token-${run}`));
    const closed = await Promise.race([
      s.closed,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), EVENT_TIMEOUT_MS)),
    ]);
    if (!closed) s.rt.socket.terminate();
    expect(closed?.code).toBe(1006);
    expect(s.events).toEqual([]);
    expect(s.errors.map((e) => e.message)).toEqual([expect.stringMatching(/Unexpected server response: 401/)]);
  }, 30_000);
});
