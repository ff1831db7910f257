// The OpenFeature OFREP providers from npm, unchanged, against `npm run dev`: the server provider
// (@openfeature/ofrep-provider, one request per evaluation) under @openfeature/server-sdk, signed in with an API
// key; the web provider (@openfeature/ofrep-web-provider, bulk evaluation then ETag polling) under
// @openfeature/web-sdk, signed in with an access token from a headers factory.
import { randomUUID } from "node:crypto";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { OpenFeature as ServerFeatures } from "@openfeature/server-sdk";
import { ProviderEvents, OpenFeature as WebFeatures } from "@openfeature/web-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootstrapAdmin,
  type DevServer,
  insecureRequest,
  registerUser,
  startDevServer,
  withDevLog,
} from "./dev-server.ts";

const BOOTSTRAP_TOKEN = `ofrep-test-bootstrap-${randomUUID()}`;
const run = randomUUID().slice(0, 8);
const FLAG = {
  bool: `sdk-${run}-bool`,
  string: `sdk-${run}-string`,
  number: `sdk-${run}-number`,
  object: `sdk-${run}-object`,
  plan: `sdk-${run}-plan`,
  live: `sdk-${run}-live`,
  missing: `sdk-${run}-missing`,
};
const POLL_MS = 250;

let server: DevServer | undefined;
let adminToken = "";
let userId = "";
let userToken = "";
let userApiKey = "";
const timings: Record<string, number> = {};

const url = (path: string) => `${(server as DevServer).url}${path}`;

async function api(method: string, path: string, token: string | undefined, body?: unknown) {
  const res = await insecureRequest(url(path), {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res;
}

async function expectStatus(what: string, status: number, res: Awaited<ReturnType<typeof api>>) {
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${res.text}`);
  return res.json;
}

/** An admin (bootstrap token), a plain user with an access token and an API key, and the flags. */
async function prepare() {
  adminToken = await bootstrapAdmin(server as DevServer, BOOTSTRAP_TOKEN, `ofrep-admin-${run}@example.test`);
  ({ id: userId, token: userToken } = await registerUser(server as DevServer, `ofrep-user-${run}@example.test`));
  userApiKey = (
    await expectStatus("api key", 201, await api("POST", "/api/users/me/api-keys", userToken, { name: "ofrep" }))
  ).key;

  const everyone = [{ name: "default" }];
  const flags = [
    { key: FLAG.bool, type: "boolean", enabled: true, strategies: everyone },
    {
      key: FLAG.string,
      type: "string",
      enabled: true,
      strategies: everyone,
      variants: [{ name: "blue", weight: 1000, payload: { type: "string", value: "blue" } }],
      defaultValue: "grey",
    },
    {
      key: FLAG.number,
      type: "number",
      enabled: true,
      strategies: everyone,
      variants: [{ name: "big", weight: 1000, payload: { type: "number", value: "42.5" } }],
      defaultValue: 1,
    },
    {
      key: FLAG.object,
      type: "json",
      enabled: true,
      strategies: everyone,
      variants: [{ name: "v1", weight: 1000, payload: { type: "json", value: '{"theme":"dark","size":3}' } }],
      defaultValue: {},
    },
    {
      key: FLAG.plan,
      type: "boolean",
      enabled: true,
      strategies: [{ name: "default", constraints: [{ contextName: "plan", operator: "IN", values: ["pro"] }] }],
    },
    { key: FLAG.live, type: "boolean", enabled: false, strategies: everyone },
  ];
  for (const flag of flags)
    await expectStatus(`create ${flag.key}`, 201, await api("POST", "/api/admin/flags", adminToken, flag));
}

beforeAll(async () => {
  const t0 = Date.now();
  server = await startDevServer({
    https: false,
    variables: { ADMIN_BOOTSTRAP_TOKEN: BOOTSTRAP_TOKEN, LOG_LEVEL: "warn", FLAGS_CACHE_TTL_SECONDS: "1" },
  });
  timings.devServerReadyMs = server.startupMs;
  await withDevLog(server, prepare);
  timings.beforeAllMs = Date.now() - t0;
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([ServerFeatures.close(), WebFeatures.close()]);
  const t = Date.now();
  await server?.stop();
  timings.stopMs = Date.now() - t;
  console.log(`ofrep-provider timings (ms): ${JSON.stringify(timings)}`);
}, 60_000);

describe("@openfeature/ofrep-provider (server SDK): single-flag evaluation", () => {
  const domain = `ofrep-server-${run}`;
  const client = () => ServerFeatures.getClient(domain);

  beforeAll(async () => {
    // The provider as its README configures it; the API key goes in a header it sends with every request.
    await ServerFeatures.setProviderAndWait(
      domain,
      new OFREPProvider({ baseUrl: (server as DevServer).url, headers: [["X-API-Key", userApiKey]] }),
    );
  });

  it("resolves boolean, string, number and object flags", async () => {
    const context = { targetingKey: userId };
    expect(await client().getBooleanValue(FLAG.bool, false, context)).toBe(true);
    expect(await client().getStringValue(FLAG.string, "default", context)).toBe("blue");
    expect(await client().getNumberValue(FLAG.number, 0, context)).toBe(42.5);
    expect(await client().getObjectValue(FLAG.object, {}, context)).toEqual({ theme: "dark", size: 3 });
  });

  it("reports reason, variant and flag metadata in the details", async () => {
    const details = await client().getStringDetails(FLAG.string, "default", { targetingKey: userId });
    expect(details).toMatchObject({ flagKey: FLAG.string, value: "blue", variant: "blue" });
    expect(["TARGETING_MATCH", "SPLIT", "DEFAULT"]).toContain(details.reason);
    expect(details.errorCode).toBeUndefined();
    expect(details.flagMetadata).toEqual({ flagVersion: 1, enabled: true });

    const off = await client().getBooleanDetails(FLAG.live, true, { targetingKey: userId });
    expect(off).toMatchObject({ value: false, reason: "DISABLED" });
  });

  it("sends custom attributes as properties for targeting", async () => {
    expect(await client().getBooleanValue(FLAG.plan, false, { targetingKey: userId, plan: "pro" })).toBe(true);
    const other = await client().getBooleanDetails(FLAG.plan, true, { targetingKey: userId, plan: "free" });
    expect(other).toMatchObject({ value: false, reason: "DEFAULT" });
  });

  it("answers a missing flag with the default and FLAG_NOT_FOUND", async () => {
    const details = await client().getBooleanDetails(FLAG.missing, true, { targetingKey: userId });
    expect(details).toMatchObject({ value: true, reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
  });

  it("answers a value of another type with the default and TYPE_MISMATCH (the provider's own check)", async () => {
    const details = await client().getNumberDetails(FLAG.string, 7, { targetingKey: userId });
    expect(details).toMatchObject({ value: 7, reason: "ERROR", errorCode: "TYPE_MISMATCH" });
  });
});

describe("@openfeature/ofrep-web-provider (web SDK): bulk evaluation and ETag polling", () => {
  const domain = `ofrep-web-${run}`;
  const client = () => WebFeatures.getClient(domain);
  const seen: { status: number; ifNoneMatch: string | null; etag: string | null; at: number }[] = [];

  /** The provider's fetch, counted: what it sent (If-None-Match) and what it got (status, ETag). */
  const countingFetch = async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(input, init);
    const response = await fetch(request);
    seen.push({
      status: response.status,
      ifNoneMatch: request.headers.get("if-none-match"),
      etag: response.headers.get("etag"),
      at: Date.now(),
    });
    return response;
  };

  const until = async (what: string, done: () => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`${what} did not happen in ${timeoutMs} ms: ${JSON.stringify(seen)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  beforeAll(async () => {
    const provider = new OFREPWebProvider({
      baseUrl: (server as DevServer).url,
      headersFactory: async () => [["Authorization", `Bearer ${userToken}`]],
      pollInterval: POLL_MS,
      changeDetection: "polling",
      cacheMode: "disabled", // no localStorage in Node
      fetchImplementation: countingFetch,
    });
    await WebFeatures.setProviderAndWait(domain, provider, { targetingKey: userId, plan: "pro" });
  });

  it("evaluates every flag in one request, then answers from its cache", () => {
    expect(seen[0]).toMatchObject({ status: 200, ifNoneMatch: null });
    expect(seen[0]?.etag).toMatch(/^"\d+-[0-9a-f]{32}"$/);
    expect(client().getBooleanValue(FLAG.bool, false)).toBe(true);
    expect(client().getStringValue(FLAG.string, "default")).toBe("blue");
    expect(client().getNumberValue(FLAG.number, 0)).toBe(42.5);
    expect(client().getObjectValue(FLAG.object, {})).toEqual({ theme: "dark", size: 3 });
    expect(client().getBooleanValue(FLAG.plan, false)).toBe(true);
    expect(client().getBooleanDetails(FLAG.live, true)).toMatchObject({ value: false, reason: "DISABLED" });
    expect(client().getBooleanDetails(FLAG.missing, true)).toMatchObject({ value: true, errorCode: "FLAG_NOT_FOUND" });
  });

  it("polls with If-None-Match and gets 304 while nothing changed", async () => {
    await until("two 304 answers", () => seen.filter((s) => s.status === 304).length >= 2);
    const first = seen[0]?.etag;
    for (const poll of seen.slice(1)) expect(poll.ifNoneMatch).toBe(first);
    expect(seen.slice(1).every((poll) => poll.status === 304)).toBe(true);
  });

  it("picks up a flag change at the next poll: 200 with a new ETag, ConfigurationChanged, the new value", async () => {
    const changed = new Promise<string[]>((resolve) => {
      client().addHandler(ProviderEvents.ConfigurationChanged, (details) => resolve(details?.flagsChanged ?? []));
    });
    const before = seen.length;
    const t0 = Date.now();
    await expectStatus(
      "toggle",
      200,
      await api("POST", `/api/admin/flags/${encodeURIComponent(FLAG.live)}/toggle`, adminToken, { enabled: true }),
    );
    const flagsChanged = await Promise.race([
      changed,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no change event: ${JSON.stringify(seen)}`)), 10_000),
      ),
    ]);
    timings.changeSeenMs = Date.now() - t0;
    expect(flagsChanged).toContain(FLAG.live);
    expect(client().getBooleanDetails(FLAG.live, false)).toMatchObject({
      value: true,
      flagMetadata: { flagVersion: 2, enabled: true },
    });
    expect(client().getBooleanValue(FLAG.live, false)).toBe(true);

    const fresh = seen.slice(before).find((poll) => poll.status === 200);
    expect(fresh?.ifNoneMatch).toBe(seen[0]?.etag);
    expect(fresh?.etag).not.toBe(seen[0]?.etag);
    // And polling settles on the new ETag: 304 again.
    await until("a 304 for the new ETag", () =>
      seen.some((poll) => poll.status === 304 && poll.ifNoneMatch === fresh?.etag),
    );
  });
});
