// Issue 7: the admin API of feature flags: CRUD, optimistic concurrency, write-time validation, history and
// audit, overrides, schedules, segments, import/export of the Unleash client API, and the playground.
import constraintsSpec from "@unleash/client-specification/specifications/09-strategy-constraints.json";
import globalSpec from "@unleash/client-specification/specifications/15-global-constraints.json";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { call } from "./harness.ts";
import { auditFor, db, signedInUser, type TestUser } from "./identity-helpers.ts";

let admin: TestUser;
let otherAdmin: TestUser;
let viewer: TestUser;
let user: TestUser;

beforeAll(async () => {
  [admin, otherAdmin, viewer, user] = await Promise.all([
    signedInUser("admin"),
    signedInUser("admin"),
    signedInUser("viewer"),
    signedInUser("user"),
  ]);
});

const uniqueKey = (tag: string) => `${tag}.${crypto.randomUUID().slice(0, 8)}`;
const path = (key: string, rest = "") => `/api/admin/flags/${encodeURIComponent(key)}${rest}`;

async function createFlag(body: Record<string, unknown>, token = admin.access) {
  const res = await call("POST", "/api/admin/flags", { token, json: body });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res;
}

const playground = (context: Record<string, unknown>, flags: string[]) =>
  call("POST", "/api/admin/flags/playground", { token: admin.access, json: { context, flags } });

describe("flag CRUD", () => {
  it("creates, reads, lists and deletes a flag with a UTF-8 key; viewers read, users cannot", async () => {
    const key = uniqueKey("Ünïcödé.🚀.flag");
    const created = await createFlag({ key, description: "rocket", tags: ["launch"], enabled: true });
    expect(created.headers.get("etag")).toBe('"1"');
    expect(created.body).toMatchObject({
      key,
      type: "boolean",
      enabled: true,
      version: 1,
      archived: false,
      defaultValue: false,
    });

    const read = await call("GET", path(key), { token: viewer.access });
    expect(read.status).toBe(200);
    expect(read.body.description).toBe("rocket");
    expect((await call("GET", path(key), { token: user.access })).status).toBe(403);
    expect(
      (await call("POST", "/api/admin/flags", { token: viewer.access, json: { key: uniqueKey("v") } })).status,
    ).toBe(403);

    const listed = await call("GET", `/api/admin/flags?tag=launch&q=${encodeURIComponent(key)}`, {
      token: viewer.access,
    });
    expect(listed.body.items.map((f: { key: string }) => f.key)).toEqual([key]);

    expect((await createFlag({ key: uniqueKey("dup") })).status).toBe(201);
    const duplicate = await call("POST", "/api/admin/flags", { token: admin.access, json: { key } });
    expect(duplicate.status).toBe(409);

    expect((await call("DELETE", path(key), { token: admin.access })).status).toBe(428);
    expect((await call("DELETE", path(key), { token: admin.access, headers: { "if-match": '"1"' } })).status).toBe(204);
    expect((await call("GET", path(key), { token: admin.access })).status).toBe(404);
  });

  it("refuses reserved and malformed keys with the field named", async () => {
    for (const key of ["segments", "", "tab\tkey", ".."]) {
      const res = await call("POST", "/api/admin/flags", { token: admin.access, json: { key } });
      expect(res.status).toBe(422);
      expect(res.body.errors[0].field).toBe("body.key");
    }
  });

  it("refuses invisible and reordering characters in every name shown to admins (422 naming the field)", async () => {
    // A right-to-left override, zero-width space/non-joiner/joiner, word joiner, BOM, and a C1 control.
    const hidden = ["\u202E", "\u200B", "\u200C", "\u200D", "\u2060", "\uFEFF", "\u0085"];
    const refused = async (method: string, target: string, json: unknown, field: string) => {
      const res = await call(method, target, { token: admin.access, json });
      expect(res.status, `${field}: ${JSON.stringify(res.body)}`).toBe(422);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
      expect(JSON.stringify(res.body.errors)).toMatch(/control or format characters/);
    };
    for (const ch of hidden) await refused("POST", "/api/admin/flags", { key: `look${ch}alike` }, "body.key");
    const base = { key: uniqueKey("names") };
    const strategy = { name: "default", constraints: [{ contextName: `ro\u200Ble`, operator: "IN", values: ["a"] }] };
    await refused("POST", "/api/admin/flags", { ...base, tags: ["ok", "t\u202Eag"] }, "body.tags.1");
    await refused("POST", "/api/admin/flags", { ...base, environments: ["prod\uFEFF"] }, "body.environments.0");
    await refused("POST", "/api/admin/flags", { ...base, kind: "rel\u2060ease" }, "body.kind");
    await refused(
      "POST",
      "/api/admin/flags",
      { ...base, strategies: [strategy] },
      "body.strategies.0.constraints.0.contextName",
    );
    await refused(
      "POST",
      "/api/admin/flags",
      { ...base, variants: [{ name: "blue\u200D", weight: 1000 }] },
      "body.variants.0.name",
    );
    await refused(
      "POST",
      "/api/admin/flags",
      { ...base, dependencies: [{ feature: "pa\u202Erent" }] },
      "body.dependencies.0.feature",
    );
    await refused("POST", "/api/admin/flags/segments", { name: "clin\u200Bicians", constraints: [] }, "body.name");
    await refused(
      "POST",
      "/api/admin/flags/import",
      { features: [{ name: "imp\u202Eorted", enabled: true }] },
      "body.features.0.name",
    );
    const key = uniqueKey("override-user");
    await createFlag({ key });
    await refused(
      "PUT",
      path(key, `/overrides/${encodeURIComponent("user\u200B1")}`),
      { value: true, reason: "r" },
      "param.userId",
    );
    await refused(
      "POST",
      path(key, "/overrides"),
      { userIds: ["u\u202E2"], value: true, reason: "r" },
      "body.userIds.0",
    );
    // Visible scripts, emoji and spaces stay allowed.
    expect((await createFlag({ key: uniqueKey("שלום 世界 🚀"), tags: ["ünï cödé"] })).status).toBe(201);
  });

  it("PATCH changes only the fields sent and bumps the version; toggle and archive", async () => {
    const key = uniqueKey("patch");
    await createFlag({ key, description: "before", tags: ["a"], strategies: [{ name: "default" }] });
    const patched = await call("PATCH", path(key), { token: admin.access, json: { description: "after", version: 1 } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ description: "after", tags: ["a"], version: 2 });
    expect(patched.body.strategies).toEqual([{ name: "default" }]);

    const toggled = await call("POST", path(key, "/toggle"), { token: admin.access });
    expect(toggled.body).toMatchObject({ enabled: true, version: 3 });
    expect((await playground({}, [key])).body.flags[key]).toMatchObject({ enabled: true });

    const archived = await call("POST", path(key, "/archive"), { token: admin.access });
    expect(archived.body.archived).toBe(true);
    expect((await playground({}, [key])).body.flags[key].reason).toBe("NOT_FOUND");
    const restored = await call("POST", path(key, "/archive"), { token: admin.access, json: { archived: false } });
    expect(restored.body.archived).toBe(false);
    expect((await playground({}, [key])).body.flags[key].enabled).toBe(true);

    // Setting what is already there changes nothing, not even the version.
    const same = await call("POST", path(key, "/toggle"), { token: admin.access, json: { enabled: true } });
    expect(same.body.version).toBe(restored.body.version);
  });
});

describe("optimistic concurrency", () => {
  it("two admins cannot silently overwrite each other", async () => {
    const key = uniqueKey("race");
    await createFlag({ key, description: "v1" });
    const first = await call("GET", path(key), { token: admin.access });
    const second = await call("GET", path(key), { token: otherAdmin.access });
    const etag = first.headers.get("etag") as string;
    expect(second.headers.get("etag")).toBe(etag);

    const winner = await call("PUT", path(key), {
      token: admin.access,
      headers: { "if-match": etag },
      json: { description: "admin one", enabled: true },
    });
    expect(winner.status).toBe(200);
    expect(winner.headers.get("etag")).toBe('"2"');

    const loser = await call("PUT", path(key), {
      token: otherAdmin.access,
      headers: { "if-match": etag },
      json: { description: "admin two" },
    });
    expect(loser.status).toBe(412);
    expect(loser.body).toMatchObject({ code: "PRECONDITION_FAILED", currentVersion: 2 });
    expect((await call("GET", path(key), { token: admin.access })).body.description).toBe("admin one");

    const unconditional = await call("PUT", path(key), { token: otherAdmin.access, json: { description: "x" } });
    expect(unconditional.status).toBe(428);
    const badHeader = await call("PUT", path(key), {
      token: admin.access,
      headers: { "if-match": "nonsense" },
      json: {},
    });
    expect(badHeader.status).toBe(400);
  });

  it("concurrent writes to one flag serialise: each gets its own version", async () => {
    const key = uniqueKey("serial");
    await createFlag({ key });
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        call("PUT", path(key, "/variants"), {
          token: admin.access,
          json: { variants: [{ name: `v${i}`, weight: 1000 }] },
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(results.map((r) => r.body.version).sort()).toEqual([2, 3, 4, 5]);
  });
});

describe("write-time validation names the field at fault", () => {
  it("PATCH without a body: 422 naming the body, not a 500 (found by the fuzzer)", async () => {
    const key = uniqueKey("nobody");
    await createFlag({ key });
    const res = await call("PATCH", path(key), { token: admin.access, headers: { "if-match": '"1"' } });
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(res.body.errors).toEqual([{ field: "body", message: expect.stringContaining("required") }]);
  });

  const refuse = async (body: Record<string, unknown>, field: string) => {
    const res = await call("POST", "/api/admin/flags", {
      token: admin.access,
      json: { key: uniqueKey("bad"), ...body },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(res.body.code).toBe("VALIDATION_FAILED");
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  };
  const strategy = (constraint: Record<string, unknown>) => ({
    strategies: [{ name: "default", constraints: [{ contextName: "x", ...constraint }] }],
  });

  it("a bad regex", () =>
    refuse(strategy({ operator: "REGEX", value: "([unclosed" }), "body.strategies[0].constraints[0].value"));
  it("a bad semver", () =>
    refuse(strategy({ operator: "SEMVER_GT", value: "one.two" }), "body.strategies[0].constraints[0].value"));
  it("variant weights that do not add up", () =>
    refuse(
      {
        variants: [
          { name: "a", weight: 600, weightType: "fix" },
          { name: "b", weight: 600, weightType: "fix" },
        ],
      },
      "body.variants",
    ));
  it("an unknown segment", () =>
    refuse({ strategies: [{ name: "default", segments: [987654] }] }, "body.strategies[0].segments[0]"));
  it("a default value not of the flag's type (boolean, number, string)", async () => {
    await refuse({ type: "boolean", defaultValue: 12345 }, "body.defaultValue");
    await refuse({ defaultValue: "on" }, "body.defaultValue");
    await refuse({ type: "number", defaultValue: "12345" }, "body.defaultValue");
    await refuse({ type: "string", defaultValue: false }, "body.defaultValue");
    // Changing the type alone leaves a default of the old type: refused too.
    const key = uniqueKey("retype");
    await createFlag({ key, type: "boolean" });
    const res = await call("PATCH", path(key), {
      token: admin.access,
      headers: { "if-match": '"1"' },
      json: { type: "number" },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(["body.defaultValue"]);
  });
  it("an unknown operator (schema)", () =>
    refuse(strategy({ operator: "LIKE", values: ["a"] }), "body.strategies.0.constraints.0.operator"));

  it("a cyclic dependency, found through the stored flags", async () => {
    const a = uniqueKey("cycle-a");
    const b = uniqueKey("cycle-b");
    await createFlag({ key: a, enabled: true });
    await createFlag({ key: b, enabled: true, dependencies: [{ feature: a }] });
    const res = await call("PUT", path(a, "/dependencies"), {
      token: admin.access,
      json: { dependencies: [{ feature: b }] },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].field).toBe("body.dependencies[0].feature");
    // Nothing was stored: the flag is as it was.
    expect((await call("GET", path(a), { token: admin.access })).body).toMatchObject({ version: 1, dependencies: [] });
  });
});

describe("history and audit", () => {
  it("every change is versioned and audited with a before/after diff", async () => {
    const key = uniqueKey("audited");
    await createFlag({ key, description: "first" });
    await call("PATCH", path(key), {
      token: admin.access,
      headers: { "if-match": '"1"' },
      json: { description: "second" },
    });

    const history = await call("GET", path(key, "/history"), { token: viewer.access });
    expect(history.body.items.map((i: { action: string }) => i.action)).toEqual(["updated", "created"]);
    expect(history.body.items[0].diff).toEqual({ description: { before: "first", after: "second" } });
    expect(history.body.items[0].version).toBeGreaterThan(history.body.items[1].version);

    const audit = await auditFor(key);
    expect(audit.map((r) => r.action)).toEqual(["admin.flag.updated", "admin.flag.created"]);
    expect(audit[0]?.actor_id).toBe(admin.id);
    const [row] = (
      (await db.execute(
        sql`select before->>'description' as before, after->>'description' as after, metadata from audit_log where target_id = ${key} and action = 'admin.flag.updated'`,
      )) as unknown as { rows: { before: string; after: string; metadata: { diff: unknown } }[] }
    ).rows;
    expect(row).toMatchObject({ before: "first", after: "second" });
    expect(row?.metadata.diff).toEqual({ description: { before: "first", after: "second" } });
  });
});

describe("history and metrics of a key", () => {
  it("answer 404 for a key that never was a flag; a deleted flag keeps its history", async () => {
    const unknown = uniqueKey("never");
    for (const rest of ["/history", "/metrics"]) {
      const res = await call("GET", path(unknown, rest), { token: viewer.access });
      expect(res.status, rest).toBe(404);
      expect(res.body.code).toBe("NOT_FOUND");
    }
    const key = uniqueKey("gone");
    await createFlag({ key });
    expect((await call("DELETE", path(key), { token: admin.access, headers: { "if-match": '"1"' } })).status).toBe(204);
    const history = await call("GET", path(key, "/history"), { token: viewer.access });
    expect(history.status).toBe(200);
    expect(history.body.items.map((i: { action: string }) => i.action)).toEqual(["deleted", "created"]);
    const metrics = await call("GET", path(key, "/metrics"), { token: viewer.access });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatchObject({ key, days: [], totals: {} });
  });
});

describe("overrides and schedules", () => {
  it("an active override wins over everything, expires, and is cleaned up", async () => {
    const key = uniqueKey("override");
    await createFlag({
      key,
      enabled: false,
      variants: [{ name: "blue", weight: 1000, payload: { type: "string", value: "b" } }],
    });
    const set = await call("PUT", path(key, "/overrides/alice"), {
      token: admin.access,
      json: { variant: "blue", reason: "pilot user" },
    });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ userId: "alice", variant: "blue", reason: "pilot user", setBy: admin.id });

    const alice = (await playground({ userId: "alice" }, [key])).body.flags[key];
    expect(alice).toMatchObject({ enabled: true, reason: "OVERRIDE", variant: { name: "blue", enabled: true } });
    expect((await playground({ userId: "bob" }, [key])).body.flags[key]).toMatchObject({
      enabled: false,
      reason: "DISABLED",
    });

    const unknownVariant = await call("PUT", path(key, "/overrides/carol"), {
      token: admin.access,
      json: { variant: "green", reason: "x" },
    });
    expect(unknownVariant.status).toBe(422);
    const past = await call("PUT", path(key, "/overrides/carol"), {
      token: admin.access,
      json: { value: true, reason: "x", expiresAt: "2020-01-01T00:00:00Z" },
    });
    expect(past.status).toBe(422);

    const bulk = await call("POST", path(key, "/overrides"), {
      token: admin.access,
      json: { userIds: ["u1", "u2", "u3"], value: true, reason: "beta cohort", expiresAt: "2099-01-01T00:00:00Z" },
    });
    expect(bulk.body.items).toHaveLength(3);
    expect((await playground({ userId: "u2" }, [key])).body.flags[key]).toMatchObject({
      enabled: true,
      reason: "OVERRIDE",
    });
    // Past its expiry (seen through currentTime) an override no longer applies.
    expect(
      (await playground({ userId: "u2", currentTime: "2099-06-01T00:00:00Z" }, [key])).body.flags[key].reason,
    ).toBe("DISABLED");

    await db.execute(
      sql`update flag_overrides set expires_at = now() - interval '1 minute' where flag_key = ${key} and user_id = 'u1'`,
    );
    const cleanup = await call("POST", "/api/admin/flags/overrides/cleanup", { token: admin.access });
    expect(cleanup.body.removed).toBeGreaterThanOrEqual(1);
    const listed = await call("GET", path(key, "/overrides"), { token: viewer.access });
    expect(listed.body.items.map((o: { userId: string }) => o.userId).sort()).toEqual(["alice", "u2", "u3"]);

    expect((await call("DELETE", path(key, "/overrides/alice"), { token: admin.access })).status).toBe(204);
    expect((await playground({ userId: "alice" }, [key])).body.flags[key].reason).toBe("DISABLED");
  });

  it("a schedule window switches the flag on and off", async () => {
    const key = uniqueKey("scheduled");
    await createFlag({ key, enabled: true, schedule: { start: "2030-01-01T00:00:00Z", end: "2030-02-01T00:00:00Z" } });
    expect((await playground({}, [key])).body.flags[key]).toMatchObject({
      enabled: false,
      reason: "SCHEDULED_INACTIVE",
    });
    expect((await playground({ currentTime: "2030-01-15T00:00:00Z" }, [key])).body.flags[key].enabled).toBe(true);
    const bad = await call("PUT", path(key, "/schedule"), {
      token: admin.access,
      json: { schedule: { start: "2030-03-01T00:00:00Z", end: "2030-02-01T00:00:00Z" } },
    });
    expect(bad.status).toBe(422);
    const cleared = await call("PUT", path(key, "/schedule"), { token: admin.access, json: { schedule: null } });
    expect(cleared.body.schedule).toBeNull();
    expect((await playground({}, [key])).body.flags[key].enabled).toBe(true);
  });
});

describe("the playground", () => {
  it("takes null context fields and properties (as Unleash SDKs send them) as absent", async () => {
    const key = uniqueKey("null-context");
    await createFlag({
      key,
      enabled: true,
      strategies: [{ name: "default", constraints: [{ contextName: "plan", operator: "NOT_IN", values: ["free"] }] }],
    });
    const absent = await playground({}, [key]);
    const nulls = await playground(
      {
        userId: null,
        sessionId: null,
        remoteAddress: null,
        environment: null,
        appName: null,
        currentTime: null,
        properties: { plan: null },
      },
      [key],
    );
    expect(nulls.status, JSON.stringify(nulls.body)).toBe(200);
    expect(nulls.body.flags[key]).toEqual(absent.body.flags[key]);
  });
});

describe("segments", () => {
  it("a segment is reusable across flags, cannot be deleted while used", async () => {
    const segment = await call("POST", "/api/admin/flags/segments", {
      token: admin.access,
      json: { name: "clinicians", constraints: [{ contextName: "role", operator: "IN", values: ["clinician"] }] },
    });
    expect(segment.status).toBe(201);
    const key = uniqueKey("segmented");
    await createFlag({ key, enabled: true, strategies: [{ name: "default", segments: [segment.body.id] }] });
    expect((await playground({ properties: { role: "clinician" } }, [key])).body.flags[key].enabled).toBe(true);
    expect((await playground({ properties: { role: "porter" } }, [key])).body.flags[key].enabled).toBe(false);

    const inUse = await call("DELETE", `/api/admin/flags/segments/${segment.body.id}`, { token: admin.access });
    expect(inUse.status).toBe(409);
    const badSegment = await call("PUT", `/api/admin/flags/segments/${segment.body.id}`, {
      token: admin.access,
      json: { name: "clinicians", constraints: [{ contextName: "v", operator: "SEMVER_EQ", value: "x.y" }] },
    });
    expect(badSegment.status).toBe(422);
    expect(badSegment.body.errors[0].field).toMatch(/^body\.constraints\[0\]/);
  });
});

describe("import and export of the Unleash client API", () => {
  const names = (doc: { features: { name: string }[] }) => doc.features.map((f) => f.name).sort();

  // Spec 15 also has a strategy pointing at a segment that does not exist (to test evaluation); we refuse that at
  // write time, so that one feature stays out.
  const known = new Set(globalSpec.state.segments.map((s) => s.id));
  const globalDoc = {
    ...globalSpec.state,
    features: globalSpec.state.features.filter((f) =>
      f.strategies.every((s) => ((s as { segments?: number[] }).segments ?? []).every((id) => known.has(id))),
    ),
  };

  it("merge stores a spec payload faithfully; the client API serves it back; replace swaps the whole set", async () => {
    const merged = await call("POST", "/api/admin/flags/import?mode=merge", {
      token: admin.access,
      json: constraintsSpec.state,
    });
    expect(merged.status, JSON.stringify(merged.body)).toBe(200);
    expect(merged.body.mode).toBe("merge");

    const exported = await call("GET", "/api/admin/flags/export", { token: viewer.access });
    for (const feature of constraintsSpec.state.features) {
      const served = exported.body.features.find((f: { name: string }) => f.name === feature.name);
      expect(served).toEqual(expect.objectContaining(feature));
    }
    // Importing the same document again changes nothing.
    const again = await call("POST", "/api/admin/flags/import", { token: admin.access, json: constraintsSpec.state });
    expect(again.body).toMatchObject({ created: [], updated: [], unchanged: constraintsSpec.state.features.length });

    const replaced = await call("POST", "/api/admin/flags/import?mode=replace", {
      token: admin.access,
      json: globalDoc,
    });
    expect(replaced.status, JSON.stringify(replaced.body)).toBe(200);
    expect(replaced.body.removed).toEqual(expect.arrayContaining(constraintsSpec.state.features.map((f) => f.name)));

    const client = await call("GET", "/api/client/features", { token: viewer.access });
    expect(client.status).toBe(200);
    expect(globalDoc.features.length).toBe(globalSpec.state.features.length - 1);
    expect(names(client.body)).toEqual(names(globalDoc));
    expect(client.body.segments).toEqual(
      globalSpec.state.segments.map((s) => expect.objectContaining({ id: s.id, constraints: s.constraints })),
    );
    for (const feature of globalDoc.features) {
      expect(client.body.features.find((f: { name: string }) => f.name === feature.name)).toEqual(
        expect.objectContaining(feature),
      );
    }
    const etag = client.headers.get("etag") as string;
    const notModified = await call("GET", "/api/client/features", {
      token: viewer.access,
      headers: { "if-none-match": etag },
    });
    expect(notModified.status).toBe(304);
  });

  it("invalid=skip stores every valid feature and segment and reports each refused one with its reasons", async () => {
    const segmentId = 900_000 + Math.floor(Math.random() * 90_000);
    const good = uniqueKey("good");
    const dependent = uniqueKey("dependent");
    const segmented = uniqueKey("segmented");
    const regex = uniqueKey("regex");
    const missing = uniqueKey("missing");
    const cycleA = uniqueKey("cycle-a");
    const cycleB = uniqueKey("cycle-b");
    const operator = uniqueKey("operator");
    const hidden = uniqueKey("hidden\u202E");
    const badSegmentUser = uniqueKey("bad-segment-user");
    const on = (name: string, extra: Record<string, unknown> = {}) => ({ name, enabled: true, ...extra });
    const doc = {
      version: 2,
      segments: [
        { id: segmentId, name: "pros", constraints: [{ contextName: "plan", operator: "IN", values: ["pro"] }] },
        { id: segmentId + 1, constraints: [{ contextName: "email", operator: "REGEX", value: "(" }] },
      ],
      features: [
        on(good, { strategies: [{ name: "default" }] }),
        on(dependent, { dependencies: [{ feature: good }] }),
        on(segmented, { strategies: [{ name: "default", segments: [segmentId] }] }),
        on(regex, {
          strategies: [{ name: "default", constraints: [{ contextName: "x", operator: "REGEX", value: "(" }] }],
        }),
        on(missing, { strategies: [{ name: "default", segments: [987_654_321] }] }),
        on(cycleA, { dependencies: [{ feature: cycleB }] }),
        on(cycleB, { dependencies: [{ feature: cycleA }] }),
        on(operator, { strategies: [{ name: "default", constraints: [{ contextName: "x", operator: "LIKE" }] }] }),
        on(hidden),
        on(badSegmentUser, { strategies: [{ name: "default", segments: [segmentId + 1] }] }),
        on(good),
      ],
    };
    // The default stays all or nothing.
    const whole = await call("POST", "/api/admin/flags/import", { token: admin.access, json: doc });
    expect(whole.status).toBe(422);
    expect((await call("GET", path(good), { token: admin.access })).status).toBe(404);

    const res = await call("POST", "/api/admin/flags/import?mode=merge&invalid=skip", {
      token: admin.access,
      json: doc,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ mode: "merge", created: [good, dependent, segmented], segments: 1 });
    const fieldsOf = (entries: { errors: { field: string }[] }[]) => entries.map((e) => e.errors.map((x) => x.field));
    expect(res.body.refused.segments).toEqual([
      { index: 1, id: segmentId + 1, errors: [expect.objectContaining({ message: expect.any(String) })] },
    ]);
    expect(fieldsOf(res.body.refused.segments)).toEqual([["body.segments[1].constraints[0].value"]]);
    expect(res.body.refused.features.map((e: { index: number; name: string }) => [e.index, e.name])).toEqual([
      [3, regex],
      [4, missing],
      [5, cycleA],
      [6, cycleB],
      [7, operator],
      [8, hidden],
      [9, badSegmentUser],
      [10, good],
    ]);
    expect(fieldsOf(res.body.refused.features)).toEqual([
      ["body.features[3].strategies[0].constraints[0].value"],
      ["body.features[4].strategies[0].segments[0]"],
      ["body.features[5].dependencies[0].feature"],
      ["body.features[6].dependencies[0].feature"],
      ["body.features.7.strategies.0.constraints.0.operator"],
      ["body.features.8.name"],
      ["body.features[9].strategies[0].segments[0]"],
      ["body.features[10].name"],
    ]);
    for (const key of [good, dependent, segmented]) {
      expect((await call("GET", path(key), { token: admin.access })).status, key).toBe(200);
    }
    for (const key of [regex, missing, cycleA, cycleB, operator, badSegmentUser]) {
      expect((await call("GET", path(key), { token: admin.access })).status, key).toBe(404);
    }
    const segments = await call("GET", "/api/admin/flags/segments", { token: admin.access });
    expect(segments.body.items.map((s: { id: number }) => s.id)).toContain(segmentId);
    expect(segments.body.items.map((s: { id: number }) => s.id)).not.toContain(segmentId + 1);

    const badChoice = await call("POST", "/api/admin/flags/import?invalid=ignore", { token: admin.access, json: doc });
    expect(badChoice.status).toBe(422);
    expect(badChoice.body.errors[0].field).toBe("query.invalid");
  });

  it("an invalid document is refused whole, naming the feature and field", async () => {
    const before = await call("GET", "/api/admin/flags/export", { token: admin.access });
    const res = await call("POST", "/api/admin/flags/import?mode=replace", {
      token: admin.access,
      json: {
        version: 2,
        features: [
          { name: uniqueKey("fine"), enabled: true, strategies: [{ name: "default" }] },
          {
            name: uniqueKey("broken"),
            enabled: true,
            strategies: [{ name: "default", constraints: [{ contextName: "x", operator: "REGEX", value: "(" }] }],
          },
        ],
      },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].field).toBe("body.features[1].strategies[0].constraints[0].value");
    const after = await call("GET", "/api/admin/flags/export", { token: admin.access });
    expect(names(after.body)).toEqual(names(before.body));
    const badMode = await call("POST", "/api/admin/flags/import?mode=upsert", {
      token: admin.access,
      json: { features: [] },
    });
    expect(badMode.status).toBe(422);
  });
});
