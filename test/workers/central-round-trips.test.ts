// Central round trips per request class (issue #16): how many calls a warm request makes to Postgres, Redis and the
// Durable Objects that are not its own (MetricsAggregator, RateLimiter, FlagHub, AlertManager). Counted where they
// leave the Worker: every fetch to the Neon SQL endpoint or to Upstash, every statement and connection of the
// WebSocket Pool, every method call on a central object's stub. Everything a request starts counts, what it leaves
// in waitUntil included (metrics, cache writes: the harness waits for them); docs/benchmarks.md says which those are.
// Postgres is shared with every other file (unique names); Redis outlives runs (every query and question carries
// this run's word, so none is cached from before).
import { env } from "cloudflare:workers";
import { Client } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { flushExposures } from "../../src/flags/exposures.ts";
import { createFlag, uniqueFlagKey } from "./flag-helpers.ts";
import { callRaw, stack } from "./harness.ts";
import { config, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";

type Kind = "postgres" | "redis" | "durableObjects";
interface RoundTrip {
  kind: Kind;
  /** What went out, for the failure message: "postgres http: select ...", "redis EXISTS", "MetricsAggregator.record". */
  what: string;
}

// The central objects by binding; ChatRoom and VoiceSession are a request's own object, so not central.
const CENTRAL_OBJECTS = {
  METRICS: "MetricsAggregator",
  RATE_LIMITER: "RateLimiter",
  FLAG_HUB: "FlagHub",
  ALERTS: "AlertManager",
} as const;

/**
 * Records the central round trips of the requests `of` sends. Test-only: it wraps the global fetch, the Neon
 * Client's query and connect, and the central namespaces' get(), so production code carries no counter.
 */
function centralRoundTrips() {
  const trips: RoundTrip[] = [];
  let recording = false;
  const note = (kind: Kind, what: string) => {
    if (recording) trips.push({ kind, what });
  };
  const sqlText = (text: unknown) =>
    String(text ?? "")
      .replace(/\s+/g, " ")
      .trim()
      .slice(0, 60);

  const neonSql = `http://${config.NEON_LOCAL_PROXY}/sql`;
  const upstash = config.UPSTASH_REDIS_REST_URL;
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    if (url === neonSql) {
      note(
        "postgres",
        `postgres http: ${body?.queries ? `${body.queries.length} in one transaction` : sqlText(body?.query)}`,
      );
    } else if (upstash && url.startsWith(upstash)) {
      const commands: unknown[][] = url.endsWith("/pipeline") || url.endsWith("/multi-exec") ? body : [body];
      note("redis", `redis ${commands.map((command) => String(command[0]).toUpperCase()).join("+")}`);
    }
    return realFetch.call(globalThis, input, init);
  });

  // The Pool (withPoolDb) hands out Neon Clients: each statement is a round trip, and so is each connection.
  const prototype = Client.prototype as unknown as Record<"query" | "connect", (...args: unknown[]) => unknown>;
  const realQuery = prototype.query;
  const realConnect = prototype.connect;
  vi.spyOn(prototype, "query").mockImplementation(function (this: unknown, ...args: unknown[]) {
    const [query] = args;
    note(
      "postgres",
      `postgres pool: ${sqlText(typeof query === "string" ? query : (query as { text?: string })?.text)}`,
    );
    return realQuery.apply(this, args);
  });
  vi.spyOn(prototype, "connect").mockImplementation(function (this: unknown, ...args: unknown[]) {
    note("postgres", "postgres pool: connect");
    return realConnect.apply(this, args);
  });

  const bindings = env as unknown as Record<keyof typeof CENTRAL_OBJECTS, DurableObjectNamespace>;
  for (const [binding, className] of Object.entries(CENTRAL_OBJECTS)) {
    const namespace = bindings[binding as keyof typeof CENTRAL_OBJECTS];
    const realGet = namespace.get.bind(namespace);
    vi.spyOn(namespace, "get").mockImplementation((id, options) => {
      const stub = realGet(id, options);
      return new Proxy(stub, {
        get(target, property) {
          const value = Reflect.get(target, property);
          if (typeof value !== "function" || typeof property !== "string" || property === "then") return value;
          return (...args: unknown[]) => {
            note("durableObjects", `${className}.${property}`);
            return Reflect.apply(value, target, args);
          };
        },
      });
    });
  }

  return {
    /** The round trips of one request, its waitUntil work included (the harness waits for it). */
    async of(send: () => Promise<Response>) {
      trips.length = 0;
      recording = true;
      let res: Response;
      try {
        res = await send();
      } finally {
        recording = false;
      }
      const made = [...trips];
      const count = { postgres: 0, redis: 0, durableObjects: 0 };
      for (const trip of made) count[trip.kind]++;
      return { status: res.status, body: await res.text(), count, list: made.map((t) => t.what).join("\n") };
    },
  };
}

const run = crypto.randomUUID().slice(0, 8);
// A word of this run only, so no query embedding or search can be in Redis from an earlier run (query embeddings
// are cached by text alone): the run's 8 hex digits spelled as the letters a to p, 16^8 words.
const WORD = `zelquor${[...run].map((digit) => String.fromCharCode(97 + Number.parseInt(digit, 16))).join("")}`;
const SOURCE = `round-trips-${run}`;
const filters = { source_type: SOURCE };

let admin: TestUser;
let user: TestUser;
let flagKey: string;
let trips: ReturnType<typeof centralRoundTrips>;

const me = () => callRaw("GET", "/api/auth/me", { token: user.access });
const evaluateFlags = () => callRaw("POST", "/api/flags/evaluate", { token: user.access, json: { context: {} } });
const ofrep = () =>
  callRaw("POST", `/ofrep/v1/evaluate/flags/${encodeURIComponent(flagKey)}`, {
    token: user.access,
    json: { context: {} },
  });
const search = (query: string) =>
  callRaw("POST", "/api/kb/search", { token: user.access, json: { query: `${query} ${WORD}`, filters } });
const answer = (query: string) =>
  callRaw("POST", "/api/rag/query", { token: user.access, json: { query: `${query} ${WORD}`, filters } });
const login = () => callRaw("POST", "/api/auth/login", { json: { email: user.email, password: user.password } });

/** The first request of its class: after it, the isolate holds what this class keeps in memory. */
async function warm(send: () => Promise<Response>) {
  const res = await send();
  expect(res.status, await res.text()).toBe(200);
}

// With L2 (Redis) on, as in production, and pgvector (both arms of a search run).
describe.skipIf(!stack().redis || !stack().databaseHasVector)("central round trips of a warm request", () => {
  beforeAll(async () => {
    [admin, user] = await Promise.all([signedInUser("admin"), signedInUser()]);
    flagKey = uniqueFlagKey("round-trips");
    await createFlag(admin.access, { key: flagKey, type: "boolean", enabled: true, strategies: [{ name: "default" }] });
    await addIndexedDocument(admin.access, {
      title: "Anaphylaxis protocol",
      sourceType: SOURCE,
      text: `Anaphylaxis ${WORD} is treated with intramuscular adrenaline 0.5 mg into the thigh, repeated after 5 minutes if needed.\n\nLay the patient flat and give high-flow oxygen.`,
    });
    trips = centralRoundTrips();
  });

  afterAll(() => {
    vi.restoreAllMocks();
  });

  it("GET /api/auth/me, signed in with an access token", async () => {
    await warm(me);
    const { status, count, list } = await trips.of(me);
    expect(status).toBe(200);
    // Sign-in: the user and session select, the revocation EXISTS; the route: the user select; the request metrics.
    expect(count, list).toEqual({ postgres: 2, redis: 1, durableObjects: 1 });
  });

  it("POST /api/flags/evaluate", async () => {
    await warm(evaluateFlags);
    // Exposure counts go to Postgres once per FLAGS_EXPOSURE_FLUSH_SECONDS per isolate, not per request: flushed
    // here so that no flush falls due during the measured request.
    await flushExposures(config);
    const { status, count, list } = await trips.of(evaluateFlags);
    expect(status).toBe(200);
    // The caller is remembered (30 s) and the rule set held: flag_evaluations_total and the request metrics.
    expect(count, list).toEqual({ postgres: 0, redis: 0, durableObjects: 2 });
  });

  it("POST /ofrep/v1/evaluate/flags/{key} (OFREP, one flag)", async () => {
    await warm(ofrep);
    await flushExposures(config);
    const { status, count, list } = await trips.of(ofrep);
    expect(status).toBe(200);
    // As /api/flags/evaluate: flag_evaluations_total and the request metrics.
    expect(count, list).toEqual({ postgres: 0, redis: 0, durableObjects: 2 });
  });

  it("POST /api/kb/search, a query never seen before", async () => {
    await warm(() => search("adrenaline dose"));
    const { status, body, count, list } = await trips.of(() => search("thigh injection repeat"));
    expect(status).toBe(200);
    // Both arms ran and found the document: the figures are those of a full search.
    expect(JSON.parse(body)).toMatchObject({
      retrievers: { keyword: { weight: expect.any(Number) }, vector: { weight: expect.any(Number) } },
    });
    expect(JSON.parse(body).results.length).toBeGreaterThan(0);
    // Postgres: sign-in, kb version, BM25, index row, pgvector, visible chunks, result rows. Redis: revocation, then
    // per cache (search, embedding) GET, lock SET NX and the SET+DEL write. Metrics: embedder, embedding cache,
    // search stages, search cache, request.
    expect(count, list).toEqual({ postgres: 7, redis: 7, durableObjects: 5 });
  });

  it("POST /api/kb/search, the same query again", async () => {
    await warm(() => search("oxygen flat patient"));
    const { status, count, list } = await trips.of(() => search("oxygen flat patient"));
    expect(status).toBe(200);
    // Sign-in (Postgres, Redis), the kb version (Postgres); the search from isolate memory; metrics: search cache,
    // kb_search_total, request.
    expect(count, list).toEqual({ postgres: 2, redis: 1, durableObjects: 3 });
  });

  it("POST /api/rag/query, a question not asked before (local providers)", async () => {
    await warm(() => answer("How is anaphylaxis treated?"));
    const { status, body, count, list } = await trips.of(() =>
      answer("What adrenaline dose is given for anaphylaxis?"),
    );
    expect(status).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ outcome: "answered", provider: "local" });
    // The never-seen search, plus the answer's metrics (the local composer writes no usage row).
    expect(count, list).toEqual({ postgres: 7, redis: 7, durableObjects: 6 });
  });

  it("POST /api/auth/login", async () => {
    await warm(login);
    const { status, count, list } = await trips.of(login);
    expect(status).toBe(200);
    // RateLimiter hit, checkLockout, clearFailures; Postgres over HTTP: user select, last-login update, session and
    // refresh-token inserts; the audit row over a WebSocket Pool: connect, begin, lock, last row, insert, commit;
    // metrics: audit_events_total, auth_logins_total, request.
    expect(count, list).toEqual({ postgres: 10, redis: 0, durableObjects: 6 });
  });
});
