// OFREP conformance inside workerd: the single and bulk evaluation endpoints against the protocol's OpenAPI
// (open-feature/protocol service/openapi.yaml) and what the OpenFeature OFREP providers parse.
import { beforeAll, describe, expect, it } from "vitest";
import type { Snapshot } from "../../src/flags/model.ts";
import { forgetSnapshot, heldSnapshot, rememberSnapshot } from "../../src/flags/snapshot-cache.ts";
import { ofrepRoutes } from "../../src/routes/ofrep.ts";
import { call } from "./harness.ts";
import { signedInUser, type TestUser } from "./identity-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const key = (name: string) => `ofrep-${run}-${name}`;
const K = {
  on: key("on"),
  off: key("off"),
  colour: key("colour"),
  limit: key("limit"),
  settings: key("settings"),
  noValue: key("no-value"),
  targeted: key("targeted"),
  overridden: key("overridden"),
  exotic: `ofrep ${run} é/ü`, // spaces, non-ASCII and a slash: URL-encoded by the providers
};

let admin: TestUser;
let alice: TestUser;
let bob: TestUser;

const single = (flag: string, body: unknown, token?: string, headers: Record<string, string> = {}) =>
  call("POST", `/ofrep/v1/evaluate/flags/${encodeURIComponent(flag)}`, { json: body, token, headers });
const bulk = (body: unknown, token?: string, headers: Record<string, string> = {}) =>
  call("POST", "/ofrep/v1/evaluate/flags", { json: body, token, headers });

/** A request with a body as given (`json` would encode it): for malformed JSON. */
const raw = (path: string, body: string, token: string) =>
  call("POST", path, { body, token, headers: { "content-type": "application/json" } });

async function createFlag(body: Record<string, unknown>) {
  const res = await call("POST", "/api/admin/flags", { token: admin.access, json: body });
  if (res.status !== 201) throw new Error(`create ${body.key}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const flagOf = (body: { flags: { key: string }[] }, flag: string) => body.flags.find((f) => f.key === flag);

beforeAll(async () => {
  [admin, alice, bob] = await Promise.all([signedInUser("admin"), signedInUser(), signedInUser()]);
  const everyone = [{ name: "default" }];
  await createFlag({ key: K.on, type: "boolean", enabled: true, strategies: everyone });
  await createFlag({ key: K.off, type: "boolean", enabled: false, strategies: everyone });
  await createFlag({
    key: K.colour,
    type: "string",
    enabled: true,
    strategies: everyone,
    variants: [{ name: "blue", weight: 1000, payload: { type: "string", value: "blue" } }],
    defaultValue: "grey",
  });
  await createFlag({
    key: K.limit,
    type: "number",
    enabled: true,
    strategies: everyone,
    variants: [{ name: "big", weight: 1000, payload: { type: "number", value: "42.5" } }],
    defaultValue: 1,
  });
  await createFlag({
    key: K.settings,
    type: "json",
    enabled: true,
    strategies: everyone,
    variants: [{ name: "v1", weight: 1000, payload: { type: "json", value: '{"theme":"dark","size":3}' } }],
    defaultValue: {},
  });
  await createFlag({ key: K.noValue, type: "json", enabled: false, strategies: everyone, defaultValue: null });
  await createFlag({
    key: K.targeted,
    type: "boolean",
    enabled: true,
    strategies: [
      { name: "default", constraints: [{ contextName: "plan", operator: "IN", values: ["pro"] }] },
      { name: "default", constraints: [{ contextName: "seats", operator: "NUM_GT", value: "10" }] },
      { name: "default", constraints: [{ contextName: "beta", operator: "IN", values: ["true"] }] },
      { name: "default", constraints: [{ contextName: "appName", operator: "IN", values: ["ofrep-app"] }] },
    ],
  });
  await createFlag({ key: K.overridden, type: "boolean", enabled: false, strategies: everyone });
  await createFlag({ key: K.exotic, type: "boolean", enabled: true, strategies: everyone });
  const override = await call("PUT", `/api/admin/flags/${K.overridden}/overrides/${alice.id}`, {
    token: admin.access,
    json: { value: true, reason: "OFREP test: alice sees it early" },
  });
  expect(override.status).toBe(200);
});

describe("OFREP single-flag evaluation: POST /ofrep/v1/evaluate/flags/{key}", () => {
  it("serves {key, value, reason, variant, metadata} for each value type", async () => {
    const on = await single(K.on, { context: { targetingKey: alice.id } }, alice.access);
    expect(on.status).toBe(200);
    expect(on.headers.get("content-type")).toMatch(/^application\/json/);
    expect(on.body).toEqual({
      key: K.on,
      value: true,
      reason: "TARGETING_MATCH", // Unleash's "default" strategy: on for everyone it applies to
      metadata: { flagVersion: 1, enabled: true },
    });

    const off = await single(K.off, {}, alice.access);
    expect(off.body).toMatchObject({ key: K.off, value: false, reason: "DISABLED", metadata: { enabled: false } });
    expect(off.body).not.toHaveProperty("variant"); // Unleash's stand-in "disabled" variant is not a variant

    const colour = await single(K.colour, { context: {} }, alice.access);
    expect(colour.body).toMatchObject({ key: K.colour, value: "blue", variant: "blue" });
    const limit = await single(K.limit, { context: {} }, alice.access);
    expect(limit.body).toMatchObject({ key: K.limit, value: 42.5, variant: "big" });
    const settings = await single(K.settings, { context: {} }, alice.access);
    expect(settings.body).toMatchObject({ key: K.settings, value: { theme: "dark", size: 3 }, variant: "v1" });
    for (const res of [colour, limit, settings]) {
      expect(["TARGETING_MATCH", "SPLIT", "DEFAULT"]).toContain(res.body.reason);
      expect(res.body.metadata).toEqual({ flagVersion: 1, enabled: true });
    }
  });

  it("leaves out a null value (OFREP's code default): the caller's default applies", async () => {
    const res = await single(K.noValue, { context: {} }, alice.access);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ key: K.noValue, reason: "DISABLED", metadata: { flagVersion: 1, enabled: false } });
  });

  it("takes an empty body, or none at all, as an empty context", async () => {
    expect((await single(K.on, {}, alice.access)).body.value).toBe(true);
    const none = await call("POST", `/ofrep/v1/evaluate/flags/${K.on}`, { token: alice.access });
    expect(none.status).toBe(200);
    expect(none.body.value).toBe(true);
  });

  it("decodes a URL-encoded key (spaces, non-ASCII, a slash)", async () => {
    const res = await single(K.exotic, { context: {} }, alice.access);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ key: K.exotic, value: true });
  });

  it("maps custom attributes to properties (strings, numbers and booleans) and Unleash fields by name", async () => {
    const cases: [Record<string, unknown>, boolean][] = [
      [{}, false],
      [{ plan: "pro" }, true],
      [{ plan: "free" }, false],
      [{ seats: 12 }, true],
      [{ seats: 3 }, false],
      [{ beta: true }, true],
      [{ beta: false }, false],
      [{ properties: { plan: "pro" } }, true], // Unleash-style properties object
      [{ appName: "ofrep-app" }, true], // an Unleash field, not a property
      [{ nested: { plan: "pro" }, list: ["pro"] }, false], // objects and arrays are ignored
    ];
    for (const [context, expected] of cases) {
      const res = await single(K.targeted, { context: { targetingKey: alice.id, ...context } }, alice.access);
      expect(res.status, JSON.stringify(context)).toBe(200);
      expect(res.body.value, JSON.stringify(context)).toBe(expected);
      expect(res.body.reason, JSON.stringify(context)).toBe(expected ? "TARGETING_MATCH" : "DEFAULT");
    }
  });

  it("takes null attributes (as Unleash SDKs send them) as absent, in single and bulk evaluation", async () => {
    const nulls = { targetingKey: null, userId: null, sessionId: null, plan: null, properties: { plan: null } };
    const res = await single(K.targeted, { context: nulls }, alice.access);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ value: false, reason: "DEFAULT" });
    const withPlan = { ...nulls, properties: { plan: "pro", seats: null } };
    expect((await single(K.targeted, { context: withPlan }, alice.access)).body).toMatchObject({ value: true });
    const all = await bulk({ context: nulls }, alice.access);
    expect(all.status, JSON.stringify(all.body)).toBe(200);
    expect(flagOf(all.body, K.targeted)).toMatchObject({ value: false });
  });

  it("evaluates a signed-in caller as itself: a context cannot claim another user's override", async () => {
    const own = await single(K.overridden, { context: { targetingKey: alice.id } }, alice.access);
    expect(own.body).toMatchObject({ value: true, reason: "OVERRIDE", metadata: { enabled: true } });
    const noKey = await single(K.overridden, {}, alice.access);
    expect(noKey.body).toMatchObject({ value: true, reason: "OVERRIDE" });

    for (const context of [
      { targetingKey: alice.id },
      { userId: alice.id },
      { targetingKey: alice.id, userId: alice.id },
    ]) {
      const claimed = await single(K.overridden, { context }, bob.access);
      expect(claimed.status).toBe(200);
      expect(claimed.body).toMatchObject({ value: false, reason: "DISABLED" });
    }
  });

  it("answers 404 FLAG_NOT_FOUND for an unknown flag", async () => {
    const missing = key("missing");
    const res = await single(missing, { context: {} }, alice.access);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.body).toEqual({ key: missing, errorCode: "FLAG_NOT_FOUND", errorDetails: expect.any(String) });
  });

  it("answers 400 PARSE_ERROR for a body that is not JSON, or not a JSON object", async () => {
    const path = `/ofrep/v1/evaluate/flags/${K.on}`;
    for (const body of ["{not json", "[]", '"context"', "null"]) {
      const res = await raw(path, body, alice.access);
      expect(res.status, body).toBe(400);
      expect(res.body, body).toEqual({ key: K.on, errorCode: "PARSE_ERROR", errorDetails: expect.any(String) });
    }
  });

  it("answers 400 INVALID_CONTEXT for a NUL or nesting past the platform's cap, naming the field", async () => {
    const path = `/ofrep/v1/evaluate/flags/${K.on}`;
    let deep: unknown = "leaf";
    for (let i = 0; i < 3000; i++) deep = { a: deep };
    const cases: [unknown, RegExp][] = [
      [{ context: { targetingKey: "a\u0000b" } }, /body\.context\.targetingKey .*U\+0000/],
      [{ context: { plan: deep } }, /nested deeper/],
    ];
    for (const [body, details] of cases) {
      const res = await raw(path, JSON.stringify(body), alice.access);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        key: K.on,
        errorCode: "INVALID_CONTEXT",
        errorDetails: expect.stringMatching(details),
      });
    }
  });

  it("answers 400 INVALID_CONTEXT for a context of the wrong shape, naming the field", async () => {
    const cases: [unknown, RegExp][] = [
      [{ context: "alice" }, /body\.context/],
      [{ context: [1, 2] }, /body\.context/],
      [{ context: { targetingKey: 42 } }, /targetingKey/],
      [{ context: { currentTime: "yesterday" } }, /context\.currentTime/],
      [{ context: { sessionId: { id: 1 } } }, /context\.sessionId/],
      [{ context: { plan: "x".repeat(1001) } }, /context\.plan/],
      [{ context: { targetingKey: "u".repeat(201) } }, /context\.targetingKey/],
    ];
    for (const [body, field] of cases) {
      const res = await single(K.on, body, alice.access);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body).toEqual({ key: K.on, errorCode: "INVALID_CONTEXT", errorDetails: expect.stringMatching(field) });
    }
  });

  it("answers 400 GENERAL for a flag whose evaluation failed (reason ERROR), and lists it as such in bulk", async () => {
    const broken = key("broken");
    const current = heldSnapshot(); // loaded by the evaluations before
    if (!current) throw new Error("no rule set held");
    // A rule that cannot compile (the admin API refuses it, so it is planted in this isolate's rule set).
    const snapshot: Snapshot = {
      ...current,
      version: current.version + 1,
      flags: [
        ...current.flags,
        {
          key: broken,
          type: "boolean",
          enabled: true,
          environments: [],
          strategies: [{ name: "default", constraints: [{ contextName: "plan", operator: "REGEX", value: "(" }] }],
          variants: [],
          dependencies: [],
          defaultValue: false,
          schedule: null,
          version: 1,
        },
      ],
    };
    rememberSnapshot(snapshot);
    try {
      const res = await single(broken, { context: {} }, alice.access);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ key: broken, errorCode: "GENERAL", errorDetails: expect.any(String) });
      const all = await bulk({ context: {} }, alice.access);
      expect(all.status).toBe(200);
      expect(flagOf(all.body, broken)).toEqual({ key: broken, errorCode: "GENERAL", errorDetails: expect.any(String) });
      expect(flagOf(all.body, K.on)).toMatchObject({ value: true });
    } finally {
      forgetSnapshot(); // back to the published rule set
    }
  });

  it("answers 401 without credentials, and with a bad token", async () => {
    const none = await single(K.on, { context: {} });
    expect(none.status).toBe(401);
    const bad = await single(K.on, { context: {} }, "not-a-token");
    expect(bad.status).toBe(401);
  });
});

describe("OFREP bulk evaluation: POST /ofrep/v1/evaluate/flags", () => {
  it("serves every live flag with an ETag, the same as single evaluation", async () => {
    const res = await bulk({ context: { targetingKey: alice.id, plan: "pro" } }, alice.access);
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toMatch(/^"\d+-[0-9a-f]{32}"$/);
    expect(res.headers.get("cache-control")).toBe("private, no-cache");
    expect(res.body.metadata).toEqual({ ruleSetVersion: expect.any(Number) });
    expect(flagOf(res.body, K.on)).toEqual({
      key: K.on,
      value: true,
      reason: "TARGETING_MATCH", // Unleash's "default" strategy: on for everyone it applies to
      metadata: { flagVersion: 1, enabled: true },
    });
    expect(flagOf(res.body, K.colour)).toMatchObject({ value: "blue", variant: "blue" });
    expect(flagOf(res.body, K.settings)).toMatchObject({ value: { theme: "dark", size: 3 } });
    expect(flagOf(res.body, K.targeted)).toMatchObject({ value: true, reason: "TARGETING_MATCH" });
    expect(flagOf(res.body, K.overridden)).toMatchObject({ value: true, reason: "OVERRIDE" });
    expect(flagOf(res.body, K.noValue)).not.toHaveProperty("value");
    expect(flagOf(res.body, key("missing"))).toBeUndefined();
  });

  it("keeps the ETag for the same version and context, and answers If-None-Match with 304 and no body", async () => {
    const context = { context: { targetingKey: alice.id, plan: "pro" } };
    const first = await bulk(context, alice.access);
    const second = await bulk(context, alice.access);
    const etag = first.headers.get("etag") as string;
    expect(second.headers.get("etag")).toBe(etag);

    const cached = await bulk(context, alice.access, { "if-none-match": etag });
    expect(cached.status).toBe(304);
    expect(cached.body).toBeUndefined();
    expect(cached.headers.get("etag")).toBe(etag);
    // RFC 9110: a list, a weak tag and `*` match too; another tag does not.
    for (const header of [`"x", ${etag}`, `W/${etag}`, "*"]) {
      expect((await bulk(context, alice.access, { "if-none-match": header })).status).toBe(304);
    }
    const stale = await bulk(context, alice.access, { "if-none-match": '"0-00"' });
    expect(stale.status).toBe(200);
    expect(stale.body.flags.length).toBeGreaterThan(0);
  });

  it("gives another ETag to another context, and to another user with the same context", async () => {
    const base = await bulk({ context: { plan: "pro" } }, alice.access);
    const otherContext = await bulk({ context: { plan: "free" } }, alice.access);
    const otherUser = await bulk({ context: { plan: "pro" } }, bob.access);
    const etags = new Set([base, otherContext, otherUser].map((res) => res.headers.get("etag")));
    expect(etags.size).toBe(3);
    // Bob's ETag is not Alice's: he cannot revalidate her evaluations, even naming her as targetingKey.
    const claimed = await bulk({ context: { targetingKey: alice.id, plan: "pro" } }, bob.access, {
      "if-none-match": base.headers.get("etag") as string,
    });
    expect(claimed.status).toBe(200);
    expect(flagOf(claimed.body, K.overridden)).toMatchObject({ value: false, reason: "DISABLED" });
  });

  it("serves a new ETag and the new values after a flag changes", async () => {
    const context = { context: { targetingKey: alice.id } };
    const before = await bulk(context, alice.access);
    const etag = before.headers.get("etag") as string;
    expect(flagOf(before.body, K.off)).toMatchObject({ value: false });

    const toggled = await call("POST", `/api/admin/flags/${K.off}/toggle`, {
      token: admin.access,
      json: { enabled: true },
    });
    expect(toggled.status).toBe(200);

    const after = await bulk(context, alice.access, { "if-none-match": etag });
    expect(after.status).toBe(200);
    expect(after.headers.get("etag")).not.toBe(etag);
    expect(Number(after.headers.get("etag")?.slice(1).split("-")[0])).toBeGreaterThan(
      Number(etag.slice(1).split("-")[0]),
    );
    expect(flagOf(after.body, K.off)).toMatchObject({ value: true, metadata: { flagVersion: 2, enabled: true } });
    expect((await bulk(context, alice.access, { "if-none-match": after.headers.get("etag") as string })).status).toBe(
      304,
    );
  });

  it("answers 400 PARSE_ERROR and INVALID_CONTEXT without a key", async () => {
    const malformed = await raw("/ofrep/v1/evaluate/flags", "{", alice.access);
    expect(malformed.status).toBe(400);
    expect(malformed.body).toEqual({ errorCode: "PARSE_ERROR", errorDetails: expect.any(String) });
    const invalid = await bulk({ context: { currentTime: 5 } }, alice.access);
    expect(invalid.status).toBe(400);
    expect(invalid.body).toEqual({ errorCode: "INVALID_CONTEXT", errorDetails: expect.stringMatching(/currentTime/) });
  });

  it("answers 401 without credentials", async () => {
    const res = await bulk({ context: {} });
    expect(res.status).toBe(401);
  });

  it("is described in OpenAPI: both routes, the 304, the error shapes and the ETag header", () => {
    const doc = ofrepRoutes.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "OFREP", version: "test" } });
    const one = doc.paths?.["/ofrep/v1/evaluate/flags/{key}"]?.post;
    const all = doc.paths?.["/ofrep/v1/evaluate/flags"]?.post;
    expect(Object.keys(one?.responses ?? {})).toEqual(expect.arrayContaining(["200", "400", "401", "404"]));
    expect(Object.keys(all?.responses ?? {})).toEqual(expect.arrayContaining(["200", "304", "400", "401"]));
    expect(all?.responses?.["200"]).toMatchObject({ headers: { ETag: expect.any(Object) } });
    expect(Object.keys(doc.components?.schemas ?? {})).toEqual(
      expect.arrayContaining([
        "OfrepEvaluationSuccess",
        "OfrepEvaluationFailure",
        "OfrepFlagNotFound",
        "OfrepBulkEvaluationSuccess",
      ]),
    );
  });
});
