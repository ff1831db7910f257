// Provider verification: the committed HTTP pacts (contracts/*-voiceassist-api.json) replayed against the Worker
// under `npm run dev` (an isolated mirror, test/node/dev-server.ts), each interaction after its provider state has
// been set through the real API. Any mismatch fails the test, and so `npm test`.
//
// Skipped when TEST_DATABASE_URL is set: CI runs the whole suite twice and one verification per run is enough; it
// runs in the first pass, on the embedded defaults (as test/node/slo-outage.test.ts does).
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Verifier } from "@pact-foundation/pact";
import { afterAll, beforeAll, describe, it } from "vitest";
import { type DevServer, insecureRequest, startDevServer } from "../node/dev-server.ts";
import { CONTRACTS, PROVIDER } from "./support/pacts.ts";
import { ADMIN_EMAIL, CONTRACT_PASSWORD, states } from "./support/states.ts";

const BOOTSTRAP_TOKEN = "contract-test-bootstrap-token-0123456789";
const DOCUMENT_TEXT =
  "# Contract dosage guide\n\nAdults take two tablets of paracetamol daily with water.\n\nChildren need a smaller dose.\n";
const READY_WITHIN_MS = 90_000;

const skip = Boolean(process.env.TEST_DATABASE_URL);

describe.skipIf(skip)(`provider ${PROVIDER} under npm run dev`, () => {
  let server: DevServer;

  beforeAll(async () => {
    server = await startDevServer({
      https: false,
      variables: {
        ADMIN_BOOTSTRAP_TOKEN: BOOTSTRAP_TOKEN,
        LOG_LEVEL: "warn",
        // Every state signs someone in or registers someone: more often than the production limits allow.
        RATE_LIMIT_LOGIN: "1000/60",
        RATE_LIMIT_REGISTER: "1000/60",
        RATE_LIMIT_REFRESH: "1000/60",
      },
    });
  }, 240_000);

  afterAll(() => server?.stop());

  /** One JSON call to the dev server; refuses any status but those expected. */
  async function call(method: string, path: string, expected: number[], body?: unknown, token?: string) {
    const res = await insecureRequest(`${server.url}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!expected.includes(res.status))
      throw new Error(`state set-up: ${method} ${path} answered ${res.status} ${res.text}`);
    return res.json;
  }

  let users = 0;
  /** A new plain user, signed in: its tokens. */
  async function newUser(): Promise<{ accessToken: string; refreshToken: string }> {
    const email = `user-${++users}@contract.example.test`;
    await call("POST", "/api/auth/register", [201], { email, password: CONTRACT_PASSWORD, full_name: "Contract User" });
    const tokens = await call("POST", "/api/auth/login", [200], { email, password: CONTRACT_PASSWORD });
    return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token };
  }

  let admin: Promise<string> | undefined;
  /** The first admin (bootstrapped once), signed in once per run. */
  const adminToken = () => {
    admin ??= (async () => {
      await call(
        "POST",
        "/api/admin/bootstrap",
        [201],
        {
          email: ADMIN_EMAIL,
          password: CONTRACT_PASSWORD,
          full_name: "Contract Admin",
        },
        BOOTSTRAP_TOKEN,
      );
      const tokens = await call("POST", "/api/auth/login", [200], { email: ADMIN_EMAIL, password: CONTRACT_PASSWORD });
      return tokens.access_token as string;
    })();
    return admin;
  };

  let document: Promise<string> | undefined;
  /** The contract document, uploaded once and waited for until ingestion made it ready: its id. */
  const readyDocument = () => {
    document ??= (async () => {
      const token = await adminToken();
      const form = new FormData();
      form.set("file", new File([DOCUMENT_TEXT], "contract-dosage.md", { type: "text/markdown" }));
      form.set("title", "Contract dosage guide");
      form.set("tags", "contract");
      const res = await fetch(`${server.url}/api/admin/kb/documents`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: form,
      });
      if (res.status !== 202) throw new Error(`state set-up: upload answered ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      const deadline = Date.now() + READY_WITHIN_MS;
      for (;;) {
        const doc = await call("GET", `/api/admin/kb/documents/${id}`, [200], undefined, token);
        if (doc.status === "ready") return id;
        if (doc.status === "failed" || Date.now() > deadline) throw new Error(`the contract document is ${doc.status}`);
        await sleep(250);
      }
    })();
    return document;
  };

  const stateHandlers = {
    [states.account]: {
      setup: async (params: unknown) => {
        const { email, password } = params as { email: string; password: string };
        await call("POST", "/api/auth/register", [201, 409], { email, password, full_name: "Contract Reader" });
        return {};
      },
    },
    [states.signedIn]: { setup: newUser },
    [states.conversation]: {
      setup: async () => {
        await readyDocument();
        const { accessToken } = await newUser();
        const conversation = await call(
          "POST",
          "/api/conversations",
          [201],
          { title: "Dosage questions" },
          accessToken,
        );
        return { accessToken, conversationId: conversation.id };
      },
    },
    [states.document]: {
      setup: async () => ({ documentId: await readyDocument(), accessToken: await adminToken() }),
    },
    [states.flag]: {
      setup: async (params: unknown) => {
        const { key } = params as { key: string };
        const admin = await adminToken();
        await call("POST", "/api/admin/flags", [201, 409], { key, type: "boolean", enabled: true }, admin);
        return { accessToken: (await newUser()).accessToken, adminToken: admin };
      },
    },
  };

  it("honours every committed HTTP pact", async () => {
    const pactUrls = (await readdir(CONTRACTS))
      .filter((file) => file.endsWith(`-${PROVIDER}.json`))
      .map((file) => join(CONTRACTS, file));
    await new Verifier({
      provider: PROVIDER,
      providerBaseUrl: server.url,
      pactUrls,
      stateHandlers,
      logLevel: "warn",
    }).verifyProvider();
  }, 180_000);
});
