import { beforeAll, describe, expect, it } from "vitest";
import { createFlag, uniqueFlagKey } from "./flag-helpers.ts";
import { badCredentials, createIdentities } from "./fuzz/callers.ts";
import { CALLER_CLASSES, type Context, fuzzOperation, settings } from "./fuzz/campaign.ts";
import { type OpenApiDocument, operationsOf } from "./fuzz/openapi.ts";
import { tableMismatches } from "./fuzz/roles.ts";
import { call, serve, app as sharedApp } from "./harness.ts";
import { signedInUser } from "./identity-helpers.ts";

// Property-based fuzzing of every operation in the app's own /openapi.json (docs/fuzzing.md): schema-valid and
// broken parameters and bodies, odd content types and tampered credentials, as anonymous, user, viewer, admin
// and a bad credential. Every response: no 5xx, no hang, problem+json errors, no internals, and the role matrix.

// Read before the suite is declared, so each operation gets its own test (and its own seed/path report).
const doc = (await (await serve(sharedApp, "/openapi.json")).json()) as OpenApiDocument;
const operations = operationsOf(doc);
const { requests, only, seed } = settings();
const runs = Math.max(1, Math.round(requests / (operations.length * CALLER_CLASSES.length)));
let ctx: Context;
let sent = 0;

describe(`fuzzing /openapi.json (seed ${seed}, ${runs} requests per operation and caller)`, () => {
  beforeAll(async () => {
    const ids = await createIdentities();
    const victim = await signedInUser("user");
    const conversation = await call("POST", "/api/conversations", { token: ids.user.access, json: { title: "fuzz" } });
    const flagKey = uniqueFlagKey("fuzz");
    await createFlag(ids.admin.access, { key: flagKey });
    ctx = {
      doc,
      ids,
      bad: await badCredentials(ids),
      fixtures: { victimUserId: victim.id, conversationId: conversation.body.id, flagKey },
    };
  }, 60_000);

  it("has a required role for every operation, agreeing with its security", () => {
    expect(tableMismatches(operations)).toEqual([]);
  });

  for (const op of operations) {
    const name = `${op.id}`;
    const selected = !only || CALLER_CLASSES.some((c) => `${name} as ${c}`.includes(only));
    it.skipIf(!selected)(
      name,
      async () => {
        // The caller classes run side by side: each is its own seeded property, so the order does not matter.
        const classes = CALLER_CLASSES.filter((c) => !only || `${name} as ${c}`.includes(only));
        const results = await Promise.allSettled(classes.map((c) => fuzzOperation(ctx, op, c, runs)));
        const failures = results.flatMap((result, i) =>
          result.status === "rejected" ? [`${name} as ${classes[i]}: ${(result.reason as Error).message}`] : [],
        );
        for (const result of results) if (result.status === "fulfilled") sent += result.value;
        if (failures.length) throw new Error(failures.join("\n\n"));
      },
      runs * CALLER_CLASSES.length * 30_000,
    );
  }

  it.skipIf(Boolean(only))("sent the whole budget", () => {
    expect(sent).toBe(runs * operations.length * CALLER_CLASSES.length);
  });
});
