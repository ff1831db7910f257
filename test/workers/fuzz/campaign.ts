import fc from "fast-check";
import { inject } from "vitest";
import { withOpenAi } from "../answer-helpers.ts";
import { callRaw } from "../harness.ts";
import { config } from "../identity-helpers.ts";
import { disposableSession, type Identities } from "./callers.ts";
import type { DocumentedOperation, OpenApiDocument } from "./openapi.ts";
import { violations } from "./oracle.ts";
import { describeRequest, type Fixtures, type RequestShape, requestShape } from "./requests.ts";
import { type Caller, REQUIRED_ROLE } from "./roles.ts";

// How much to send and from which seed. CI: a fixed seed and about 5,000 requests. `npm run fuzz` passes
// FUZZ_RUNS / FUZZ_SEED / FUZZ_PATH / FUZZ_ONLY through test/workers/fuzz/vitest.config.ts (`provide`).

export interface FuzzSettings {
  /** Requests in the whole run, split evenly over operations and caller classes. */
  requests: number;
  seed: number;
  /** fast-check's replay path of a failure (with FUZZ_ONLY naming its test). */
  path?: string;
  /** Only the tests whose name contains this ("POST /api/kb/search as admin"). */
  only?: string;
}

export const CI_SETTINGS: FuzzSettings = { requests: 5_000, seed: 15_003 };

declare module "vitest" {
  export interface ProvidedContext {
    fuzz: FuzzSettings;
  }
}

export const settings = (): FuzzSettings => {
  try {
    return inject("fuzz") ?? CI_SETTINGS;
  } catch {
    return CI_SETTINGS;
  }
};

/** The classes of caller every operation is fuzzed as; "bad credential" draws one of the tampered tokens. */
export const CALLER_CLASSES = ["anonymous", "user", "viewer", "admin", "bad credential"] as const;
export type CallerClass = (typeof CALLER_CLASSES)[number];

/** Longer than the Worker's own outbound timeout, far under the test timeout: a request past it has hung. */
export const DEADLINE_MS = config.OUTBOUND_TIMEOUT_MS + 5_000;

/** Operations that answer 503 without an OpenAI key: fuzzed against the OpenAI stand-in (test/standins/openai.ts). */
const NEEDS_PROVIDER = /^POST \/api\/voice\/(realtime-session|transcribe|synthesize)$/;

/** Operations that end the session they are called with: a role calls them with a second session of its own. */
const ENDS_OWN_SESSION = new Set(["POST /api/auth/logout"]);

export interface Context {
  doc: OpenApiDocument;
  ids: Identities;
  bad: Record<string, Record<string, string>>;
  fixtures: Fixtures;
}

interface Sample {
  request: RequestShape;
  caller: string;
  headers: Record<string, string>;
  role: Caller;
}

function samples(ctx: Context, op: DocumentedOperation, callerClass: CallerClass): fc.Arbitrary<Sample> {
  type Credentials = { caller: string; role: Caller; headers: Record<string, string> };
  const credentials: fc.Arbitrary<Credentials> =
    callerClass === "anonymous"
      ? fc.constant<Credentials>({ caller: "anonymous", role: "anonymous", headers: {} })
      : callerClass === "bad credential"
        ? fc.constantFrom(...Object.keys(ctx.bad)).map((name) => ({
            caller: name,
            role: "anonymous" as const,
            headers: ctx.bad[name] as Record<string, string>,
          }))
        : fc.constantFrom("bearer", "apiKey").map((via): Credentials => {
            const who = ctx.ids[callerClass];
            return {
              caller: `${callerClass} (${via === "bearer" ? "access token" : "API key"})`,
              role: callerClass,
              headers: via === "bearer" ? { authorization: `Bearer ${who.access}` } : { "x-api-key": who.apiKey },
            };
          });
  return fc.tuple(requestShape(ctx.doc, op, ctx.fixtures), credentials).map(([request, who]) => {
    const sample = { request, caller: who.caller, role: who.role, headers: who.headers };
    // fast-check prints a counterexample with this: the request as sent, long strings shortened.
    return Object.assign(sample, { [fc.toStringMethod]: () => describeRequest(request, who.caller) });
  });
}

let ipCounter = 0;
/** A fresh address per request, so the per-address limits of register, login and refresh stay out of the way. */
const nextIp = () => `10.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter++ & 255}`;

async function send(ctx: Context, op: DocumentedOperation, sample: Sample) {
  const { request } = sample;
  let credentials = sample.headers;
  if (ENDS_OWN_SESSION.has(op.id) && sample.role !== "anonymous" && credentials.authorization) {
    credentials = { authorization: `Bearer ${await disposableSession(ctx.ids[sample.role])}` };
  }
  let body: BodyInit | undefined;
  if (request.body && "text" in request.body) body = request.body.text;
  if (request.body && "form" in request.body) {
    const form = new FormData();
    for (const field of request.body.form) {
      if ("file" in field) form.append(field.name, new File([field.content], field.file, { type: field.type }));
      else form.append(field.name, field.value);
    }
    body = form;
  }
  const res = await callRaw(request.method, request.url, {
    ip: nextIp(),
    headers: { ...request.headers, ...credentials },
    ...(body !== undefined ? { body } : {}),
    ...(NEEDS_PROVIDER.test(op.id) ? { overrides: withOpenAi() } : {}),
  });
  const contentType = (res.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  if (res.webSocket) {
    res.webSocket.accept();
    res.webSocket.close(1000, "fuzzer");
    return { status: res.status, contentType };
  }
  if (contentType === "text/event-stream") {
    await res.body?.cancel();
    return { status: res.status, contentType };
  }
  const text = await res.text();
  let code: string | undefined;
  if (contentType.endsWith("json")) {
    try {
      code = (JSON.parse(text) as { code?: string }).code;
    } catch {}
  }
  return { status: res.status, contentType, text, code };
}

function withDeadline<T>(work: Promise<T>, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${DEADLINE_MS} ms: ${what()}`)), DEADLINE_MS);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Fuzzes one operation as one class of caller; throws fast-check's report (seed, path, request) on a failure. */
export async function fuzzOperation(ctx: Context, op: DocumentedOperation, callerClass: CallerClass, runs: number) {
  const required = REQUIRED_ROLE[op.id];
  if (!required) throw new Error(`${op.id} has no row in REQUIRED_ROLE`);
  const { seed, path } = settings();
  let sent = 0;
  const property = fc.asyncProperty(samples(ctx, op, callerClass), async (sample) => {
    const describe = () => describeRequest(sample.request, sample.caller);
    const observed = await withDeadline(send(ctx, op, sample), describe);
    sent++;
    const broken = violations(op, required, sample.role, sample.request, observed);
    if (broken.length) {
      const excerpt = observed.text === undefined ? "" : `\n  response body: ${observed.text.slice(0, 500)}`;
      throw new Error(`${broken.join("; ")}\n  request: ${describe()}${excerpt}`);
    }
  });
  await fc.assert(property, {
    seed,
    numRuns: runs,
    ...(path ? { path } : {}),
    includeErrorInReport: true,
  });
  return sent;
}
