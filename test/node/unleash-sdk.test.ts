// Issue 7: the Unleash Node SDK (`unleash-client`, unchanged) reads our flags from `GET /api/client/features`
// under `npm run dev`, signed in with an admin's API key sent as the bare Authorization value (as Unleash SDKs
// send their tokens). It must evaluate every imported spec case as the specification says, agree with our own
// evaluation (the admin playground), and pick up a change on its next poll.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import constraintsSpec from "@unleash/client-specification/specifications/09-strategy-constraints.json" with {
  type: "json",
};
import strategyVariantsSpec from "@unleash/client-specification/specifications/16-strategy-variants.json" with {
  type: "json",
};
import { type Context, Unleash } from "unleash-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapAdmin, type DevServer, insecureRequest, startDevServer } from "./dev-server.ts";

const BOOTSTRAP_TOKEN = `unleash-sdk-bootstrap-${randomUUID()}`;
const SPECS = [constraintsSpec, strategyVariantsSpec];

interface SpecCase {
  description: string;
  context: Context;
  toggleName: string;
  expectedResult: unknown;
}

let server: DevServer | undefined;
let adminToken = "";
let apiKey = "";
let backupDir = "";
let sdk: Unleash | undefined;

async function api(method: string, path: string, body?: unknown) {
  const res = await insecureRequest(`${(server as DevServer).url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
  return res.json;
}

beforeAll(async () => {
  server = await startDevServer({
    https: false,
    variables: { ADMIN_BOOTSTRAP_TOKEN: BOOTSTRAP_TOKEN, LOG_LEVEL: "warn" },
  });
  adminToken = await bootstrapAdmin(server, BOOTSTRAP_TOKEN, `unleash-admin-${randomUUID().slice(0, 8)}@example.test`);
  apiKey = (await api("POST", "/api/users/me/api-keys", { name: "unleash-sdk" })).key;
  for (const spec of SPECS) await api("POST", "/api/admin/flags/import?mode=merge", spec.state);

  backupDir = await mkdtemp(join(tmpdir(), "unleash-sdk-"));
  sdk = new Unleash({
    appName: "voiceassist-sdk-test",
    url: `${server.url}/api/`,
    customHeaders: { Authorization: apiKey },
    refreshInterval: 500,
    disableMetrics: true,
    backupPath: backupDir,
  });
  sdk.on("error", () => undefined); // surfaced through `synchronized` never arriving
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the SDK never synchronised with /api/client/features")), 20_000);
    sdk?.once("synchronized", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}, 180_000);

afterAll(async () => {
  sdk?.destroy();
  await server?.stop();
  if (backupDir) await rm(backupDir, { recursive: true, force: true });
}, 60_000);

describe("unleash-client against GET /api/client/features", () => {
  it("evaluates every imported specification case as the specification expects, and as we do", async () => {
    let checked = 0;
    for (const spec of SPECS) {
      for (const test of (spec as { tests?: SpecCase[] }).tests ?? []) {
        expect(sdk?.isEnabled(test.toggleName, test.context), `${spec.name}: ${test.description}`).toBe(
          test.expectedResult,
        );
        const ours = await api("POST", "/api/admin/flags/playground", {
          context: test.context,
          flags: [test.toggleName],
        });
        expect(ours.flags[test.toggleName].enabled, `ours, ${spec.name}: ${test.description}`).toBe(
          test.expectedResult,
        );
        checked++;
      }
      for (const test of (spec as { variantTests?: SpecCase[] }).variantTests ?? []) {
        const expected = test.expectedResult as { name: string; enabled: boolean; payload?: unknown };
        const variant = sdk?.getVariant(test.toggleName, test.context);
        expect({ name: variant?.name, enabled: variant?.enabled }, `${spec.name}: ${test.description}`).toEqual({
          name: expected.name,
          enabled: expected.enabled,
        });
        if (expected.payload) expect(variant?.payload).toEqual(expected.payload);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("picks up a change on its next poll", async () => {
    const key = (constraintsSpec.state.features[0] as { name: string }).name;
    expect(sdk?.getFeatureToggleDefinition(key)?.enabled).toBe(true);
    await api("POST", `/api/admin/flags/${encodeURIComponent(key)}/toggle`, { enabled: false });
    const deadline = Date.now() + 10_000;
    while (sdk?.getFeatureToggleDefinition(key)?.enabled !== false && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(sdk?.getFeatureToggleDefinition(key)?.enabled).toBe(false);
    expect(sdk?.isEnabled(key, { environment: "test" })).toBe(false);
  });
});
