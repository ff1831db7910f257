// What the bench:load scenarios need on a fresh npm run dev, set up through the real API: accounts (a pool for
// sign-in, a few callers for the signed-in scenarios, one for the limiter), the bench:flags workload's flags, a
// small SciFact corpus imported and indexed, and the requests of every scenario prepared up front (so the client
// does no JSON work while timing).
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { EvaluationContext } from "../../src/flags/model.ts";
import { importAndWait } from "../answers/server.ts";
import { generateWorkload, refusedByUnleash, without } from "../flags/workload.ts";
import { ApiClient, ApiError } from "../ingest/client.ts";
import { type ImportRecord, readCorpus } from "../retrieval/dataset.ts";
import type { LoadRequest, Scenario } from "./generator.ts";

export const SCIFACT = join(import.meta.dirname, "../../../shared/data/scifact");
export const SCENARIOS = [
  "health",
  "me",
  "sign-in",
  "sign-in-limited",
  "flags",
  "search",
  "answers",
  "uploads",
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface SetupOptions {
  base: string;
  bootstrapToken: string;
  connections: number;
  /** Accounts the sign-in scenario spreads its logins over. */
  accounts: number;
  /** SciFact documents imported for search and answers. */
  docs: number;
  /** Distinct documents the uploads scenario may send (it stops when they run out). */
  uploads: number;
  deadline: number;
  say: (line: string) => void;
}

export interface Prepared {
  scenarios: Scenario[];
  /** Set-up figures for the report. */
  setup: { accounts: number; callers: number; flags: number; docs_ready: number; docs_failed: number; queries: number };
}

const CALLERS = 8;
const REGISTER_CONCURRENCY = 4;
const json = { "content-type": "application/json" };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

interface Account {
  email: string;
  password: string;
}

async function inParallel<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await work(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

async function register(client: ApiClient, account: Account, name: string): Promise<string> {
  const res = await client.raw("POST", "/api/auth/register", {
    bearer: null,
    contentType: "application/json",
    body: JSON.stringify({ ...account, full_name: name }),
  });
  if (res.status !== 201) throw new ApiError("POST /api/auth/register", res);
  return String(res.json.id);
}

async function signIn(client: ApiClient, account: Account): Promise<string> {
  const res = await client.raw("POST", "/api/auth/login", {
    bearer: null,
    contentType: "application/json",
    body: JSON.stringify(account),
  });
  if (res.status !== 200) throw new ApiError("POST /api/auth/login", res);
  return String(res.json.access_token);
}

const newAccount = (kind: string, i: number): Account => ({
  email: `load-${kind}-${i}-${randomBytes(3).toString("hex")}@voiceassist.test`,
  password: randomBytes(18).toString("base64url"),
});

/** SciFact queries, in file order. */
async function readQueries(): Promise<string[]> {
  return (await readFile(join(SCIFACT, "queries.jsonl"), "utf8"))
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => String((JSON.parse(line) as { text: unknown }).text));
}

/** One upload: the document as a Markdown file in a multipart form, distinct by its run tag and index. */
function uploadRequest(record: ImportRecord, tag: string, i: number, token: string): LoadRequest {
  const boundary = `----bench-load-${tag}-${i}`;
  // readCorpus puts the title on the first line: it becomes the heading.
  const text = `# ${record.text}\n\n(bench:load ${tag} #${i})\n`;
  const part = (headers: string, content: string) => `--${boundary}\r\n${headers}\r\n\r\n${content}\r\n`;
  const body =
    part(`Content-Disposition: form-data; name="file"; filename="load-${i}.md"\r\nContent-Type: text/markdown`, text) +
    part('Content-Disposition: form-data; name="source_type"', "bench-load") +
    `--${boundary}--\r\n`;
  return {
    method: "POST",
    path: "/api/admin/kb/documents",
    headers: { ...bearer(token), "content-type": `multipart/form-data; boundary=${boundary}` },
    body,
  };
}

/** Sets up the server for the scenarios in `wanted` and returns them, in the order given. */
export async function prepare(options: SetupOptions, wanted: readonly ScenarioName[]): Promise<Prepared> {
  const { base, say } = options;
  const has = (name: ScenarioName) => wanted.includes(name);
  const client = new ApiClient(base, 120_000);
  const admin = newAccount("admin", 0);
  await client.bootstrap(options.bootstrapToken, { ...admin, full_name: "Load Benchmark Admin" });
  await client.login(admin.email, admin.password);
  const adminToken = await signIn(client, admin);

  const needsCallers = has("me") || has("flags") || has("search") || has("answers");
  const callers = Array.from({ length: needsCallers ? CALLERS : 0 }, (_, i) => newAccount("caller", i));
  const pool = Array.from({ length: has("sign-in") ? options.accounts : 0 }, (_, i) => newAccount("signin", i));
  const limited = newAccount("limited", 0);
  const everyone = [...callers, ...pool, ...(has("sign-in-limited") ? [limited] : [])];
  say(`registering ${everyone.length} accounts (${REGISTER_CONCURRENCY} at a time)`);
  const ids = await inParallel(everyone, REGISTER_CONCURRENCY, (a) => register(client, a, "Load Benchmark"));
  const callerIds = ids.slice(0, callers.length);
  const tokens = await inParallel(callers, REGISTER_CONCURRENCY, (a) => signIn(client, a));

  let flags = 0;
  let contexts: EvaluationContext[] = [];
  if (has("flags")) {
    const workload = generateWorkload();
    const doc = without(workload.doc, refusedByUnleash(workload.doc));
    await client.json("POST", "/api/admin/flags/import?mode=replace", 200, {
      body: JSON.stringify(doc),
      contentType: "application/json",
      timeoutMs: 120_000,
    });
    flags = doc.features.length;
    contexts = workload.contexts.map(({ currentTime: _t, ...rest }) => rest);
    say(`imported ${flags} flags; ${contexts.length} evaluation contexts`);
  }

  const corpus = has("search") || has("answers") || has("uploads") ? await readCorpus(SCIFACT) : [];
  let indexed = { ready: 0, failed: 0 };
  if (has("search") || has("answers")) {
    say(`importing the first ${options.docs} SciFact documents`);
    indexed = await importAndWait(client, corpus.slice(0, options.docs), {
      stallMs: 120_000,
      deadline: options.deadline,
      say,
    });
    say(`indexed: ${indexed.ready} ready, ${indexed.failed} failed`);
  }
  const queries = has("search") || has("answers") ? await readQueries() : [];
  // Disjoint halves, so that answers do not start on what the search scenario just cached.
  const half = Math.floor(queries.length / 2);
  const callerHeaders = (i: number) => ({ ...json, ...bearer(tokens[i % tokens.length] as string) });
  const tag = randomBytes(4).toString("hex");

  const build: Record<ScenarioName, () => Omit<Scenario, "connections">> = {
    health: () => ({
      name: "health",
      route: "GET /health",
      what: "floor: liveness, no auth, no storage",
      requests: [{ method: "GET", path: "/health", headers: {} }],
    }),
    me: () => ({
      name: "me",
      route: "GET /api/auth/me",
      what: `floor for signed-in routes: ${callers.length} users' access tokens`,
      requests: tokens.map((token) => ({ method: "GET", path: "/api/auth/me", headers: bearer(token) })),
    }),
    "sign-in": () => ({
      name: "sign-in",
      route: "POST /api/auth/login",
      what: `${pool.length} accounts in turn, default limits (10/min per address and account)`,
      requests: pool.map((a) => ({ method: "POST", path: "/api/auth/login", headers: json, body: JSON.stringify(a) })),
    }),
    "sign-in-limited": () => ({
      name: "sign-in-limited",
      route: "POST /api/auth/login",
      what: "one account over and over: the limiter's 429 after its first 10",
      requests: [{ method: "POST", path: "/api/auth/login", headers: json, body: JSON.stringify(limited) }],
    }),
    flags: () => ({
      name: "flags",
      route: "POST /api/flags/evaluate",
      what: `${flags} flags, ${contexts.length} contexts, ${callers.length} users`,
      requests: contexts.map((context, i) => ({
        method: "POST",
        path: "/api/flags/evaluate",
        headers: callerHeaders(i),
        body: JSON.stringify({ context: { ...context, userId: callerIds[i % callerIds.length] } }),
      })),
    }),
    search: () => ({
      name: "search",
      route: "POST /api/kb/search",
      what: `hybrid, top_k 10, ${half} distinct SciFact claims over ${indexed.ready} documents`,
      cached: true,
      requests: queries.slice(0, half).map((query, i) => ({
        method: "POST",
        path: "/api/kb/search",
        headers: callerHeaders(i),
        body: JSON.stringify({ query, top_k: 10 }),
      })),
    }),
    answers: () => ({
      name: "answers",
      route: "POST /api/rag/query",
      what: `JSON, local composer, ${queries.length - half} other distinct claims`,
      cached: true,
      requests: queries.slice(half).map((query, i) => ({
        method: "POST",
        path: "/api/rag/query",
        headers: callerHeaders(i),
        body: JSON.stringify({ query, stream: false }),
      })),
    }),
    uploads: () => ({
      name: "uploads",
      route: "POST /api/admin/kb/documents",
      what: `distinct Markdown documents (${options.uploads} at most, SciFact abstracts not imported), ingested meanwhile`,
      once: true,
      requests: corpus
        .slice(options.docs, options.docs + options.uploads)
        .map((record, i) => uploadRequest(record, tag, i, adminToken)),
    }),
  };
  return {
    scenarios: wanted.map((name) => ({ ...build[name](), connections: options.connections })),
    setup: {
      accounts: pool.length,
      callers: callers.length,
      flags,
      docs_ready: indexed.ready,
      docs_failed: indexed.failed,
      queries: queries.length,
    },
  };
}
