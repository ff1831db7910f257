// Consumer pact of the admin CLI (scripts/admin): its real commands (runCli) run against Pact's mock server, named
// by VOICEASSIST_URL as a deployment would be. Writes contracts/voiceassist-admin-cli-voiceassist-api.json.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MatchersV3, PactV4 } from "@pact-foundation/pact";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../scripts/admin/cli.ts";
import { bearer, expectCommitted, fromState, isoTime, jsonType, PROVIDER, scratchDir, uuid } from "./support/pacts.ts";
import { CONTRACT_PASSWORD, FLAG_KEY, OPERATOR_EMAIL, states } from "./support/states.ts";

const { boolean, eachLike, integer, regex, string } = MatchersV3;
const CONSUMER = "voiceassist-admin-cli";
const FILE = `${CONSUMER}-${PROVIDER}.json`;
const TOKEN = "example-admin-token";
const DOCUMENT = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
// What the CLI's http.ts asks for on every call.
const ACCEPT = "application/json, application/problem+json";

let dir: string;
let home: string;
let pact: PactV4;
beforeAll(async () => {
  dir = await scratchDir();
  home = await mkdtemp(join(tmpdir(), "voiceassist-cli-pact-"));
  pact = new PactV4({ consumer: CONSUMER, provider: PROVIDER, dir, logLevel: "warn" });
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
  await expectCommitted(dir, FILE);
});

/** Runs `npm run admin -- ...argv` against the mock server; its exit code and output. */
async function admin(url: string, argv: string[], options: { token?: string; stdin?: string } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    env: {
      VOICEASSIST_URL: url,
      VOICEASSIST_CREDENTIALS: join(home, "credentials.json"),
      ...(options.token ? { VOICEASSIST_TOKEN: options.token } : {}),
    },
    readStdin: async () => options.stdin ?? "",
    out: (line) => out.push(line),
    write: (text) => out.push(text),
    err: (line) => err.push(line),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const listedDocument = {
  id: uuid(DOCUMENT),
  status: regex("^(queued|processing|ready|failed)$", "ready"),
  chunk_count: integer(1),
  source_type: string("upload"),
  title: string("Contract dosage guide"),
};

describe("npm run admin -- login", () => {
  it("signs in and keeps the session", () =>
    pact
      .addInteraction()
      .given(states.account, { email: OPERATOR_EMAIL, password: CONTRACT_PASSWORD })
      .uponReceiving("the CLI's sign-in")
      .withRequest("POST", "/api/auth/login", (req) =>
        req
          .headers({ accept: ACCEPT, "Content-Type": jsonType() })
          .jsonBody({ email: OPERATOR_EMAIL, password: CONTRACT_PASSWORD }),
      )
      .willRespondWith(200, (res) =>
        res.headers({ "Content-Type": jsonType() }).jsonBody({
          access_token: string("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
          refresh_token: string("nTwvzPr470tfn8Dq7w2rDQtqtajKN202HHy0lcJf-4g"),
          expires_in: integer(900),
          refresh_expires_in: integer(86400),
          user: { email: string(OPERATOR_EMAIL), role: regex("^(user|viewer|admin)$", "user") },
        }),
      )
      .executeTest(async (server) => {
        const run = await admin(server.url, ["login", "--email", OPERATOR_EMAIL], { stdin: `${CONTRACT_PASSWORD}\n` });
        expect(run).toMatchObject({ code: 0, err: "" });
        expect(run.out).toContain(`as ${OPERATOR_EMAIL} (user)`);
      }));
});

describe("npm run admin -- kb", () => {
  it("lists documents", () =>
    pact
      .addInteraction()
      .given(states.document)
      .uponReceiving("the CLI's listing of knowledge-base documents")
      .withRequest("GET", "/api/admin/kb/documents", (req) =>
        req
          .headers({ accept: ACCEPT, authorization: bearer("accessToken", TOKEN) })
          .query({ page: "1", page_size: "200" }),
      )
      .willRespondWith(200, (res) =>
        res.headers({ "Content-Type": jsonType() }).jsonBody({ items: eachLike(listedDocument), total: integer(1) }),
      )
      .executeTest(async (server) => {
        const run = await admin(server.url, ["kb", "list"], { token: TOKEN });
        expect(run.code).toBe(0);
        expect(run.out).toMatch(new RegExp(`^${DOCUMENT} +ready +1 +upload +"Contract dosage guide"$`));
      }));

  it("shows a document's ingestion", () =>
    pact
      .addInteraction()
      .given(states.document)
      .uponReceiving("the CLI's status of one document")
      .withRequest(
        "GET",
        fromState("/api/admin/kb/documents/{documentId}", `/api/admin/kb/documents/${DOCUMENT}`),
        (req) => req.headers({ accept: ACCEPT, authorization: bearer("accessToken", TOKEN) }),
      )
      .willRespondWith(200, (res) =>
        res.headers({ "Content-Type": jsonType() }).jsonBody({
          ...listedDocument,
          status: "ready",
          token_count: integer(14),
          mime_type: string("text/markdown"),
          byte_size: integer(120),
          attempts: integer(1),
          indexed_at: isoTime(),
        }),
      )
      .executeTest(async (server) => {
        const run = await admin(server.url, ["kb", "status", DOCUMENT], { token: TOKEN });
        expect(run.code).toBe(0);
        expect(run.out).toContain("ready, 1 chunks");
        expect(run.out).toContain("text/markdown, 120 bytes, source upload");
      }));

  it("explains a refused token in one line (exit 1)", () =>
    pact
      .addInteraction()
      .uponReceiving("the CLI's status of one document with a token the server refuses")
      .withRequest("GET", `/api/admin/kb/documents/${DOCUMENT}`, (req) =>
        req.headers({ accept: ACCEPT, authorization: "Bearer not-a-valid-token" }),
      )
      .willRespondWith(401, (res) =>
        res.headers({ "Content-Type": jsonType("problem+json") }).jsonBody({
          status: 401,
          code: "UNAUTHORIZED",
          detail: string("The access token is not valid; sign in again."),
          requestId: string("0f8fad5b-d9cb-469f-a165-70867728950e"),
        }),
      )
      .executeTest(async (server) => {
        const run = await admin(server.url, ["kb", "status", DOCUMENT], { token: "not-a-valid-token" });
        expect(run.code).toBe(1);
        expect(run.err).toMatch(/^401 UNAUTHORIZED: /);
      }));
});

describe("npm run admin -- flags evaluate", () => {
  it("evaluates every flag for a context", () =>
    pact
      .addInteraction()
      .given(states.flag, { key: FLAG_KEY })
      .uponReceiving("the CLI's flag playground evaluation")
      .withRequest("POST", "/api/admin/flags/playground", (req) =>
        req
          .headers({ accept: ACCEPT, "Content-Type": jsonType(), authorization: bearer("adminToken", TOKEN) })
          .jsonBody({ context: { userId: "contract-user" } }),
      )
      .willRespondWith(200, (res) =>
        res.headers({ "Content-Type": jsonType() }).jsonBody({
          flags: {
            [FLAG_KEY]: {
              enabled: boolean(true),
              variant: { name: string("disabled") },
              reason: string("DEFAULT"),
            },
          },
        }),
      )
      .executeTest(async (server) => {
        const run = await admin(server.url, ["flags", "evaluate", "--user", "contract-user"], { token: TOKEN });
        expect(run.code).toBe(0);
        expect(run.out).toMatch(new RegExp(`^${FLAG_KEY} +on +disabled +DEFAULT$`));
      }));
});
