import { beforeAll, describe, expect, it } from "vitest";
import { app, callRaw, serve } from "./harness.ts";
import { signedInUser, type TestUser } from "./identity-helpers.ts";

// Who may call what, generated from /openapi.json: a new route is covered without anyone writing a test.
// Authorisation runs before validation and lookups, so a fake id and no body are enough to see the refusal.

interface Operation {
  security?: Record<string, string[]>[];
}
type Document = { paths: Record<string, Record<string, Operation>> };

/** Admin-area operations a viewer may call although they are not GETs: they read (evaluate, search). */
const VIEWER_READS_BY_POST = new Set(["POST /api/admin/flags/playground"]);

const fill = (path: string) =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => (/id$/i.test(name) ? crypto.randomUUID() : "authz-probe"));

let operations: { method: string; path: string; schemes: string[] }[] = [];

async function status(method: string, path: string, token?: string): Promise<number> {
  const res = await callRaw(method, fill(path), { token, ip: "192.0.2.90" });
  await res.body?.cancel();
  return res.status;
}

describe("authorisation of every operation in /openapi.json", () => {
  let user: TestUser;
  let viewer: TestUser;
  beforeAll(async () => {
    [user, viewer] = await Promise.all([signedInUser(), signedInUser("viewer")]);
    const doc = (await (await serve(app, "/openapi.json")).json()) as Document;
    operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        schemes: (op.security ?? []).flatMap((requirement) => Object.keys(requirement)),
      })),
    );
  });

  it("answers 401 without credentials wherever the document asks for one", async () => {
    const guarded = operations.filter((op) => op.schemes.length > 0);
    expect(guarded.length).toBeGreaterThan(60);
    const wrong: string[] = [];
    for (const op of guarded) {
      const got = await status(op.method, op.path);
      if (got !== 401) wrong.push(`${op.method} ${op.path}: ${got}`);
    }
    expect(wrong).toEqual([]);
  });

  it("answers 403 to a plain user on every admin and Unleash-client operation", async () => {
    const privileged = operations.filter(
      (op) => /^\/api\/(admin|client)\//.test(op.path) && op.schemes.some((s) => s === "bearerAuth"),
    );
    expect(privileged.length).toBeGreaterThan(30);
    const wrong: string[] = [];
    for (const op of privileged) {
      const got = await status(op.method, op.path, user.access);
      if (got !== 403) wrong.push(`${op.method} ${op.path}: ${got}`);
    }
    expect(wrong).toEqual([]);
  });

  it("answers 403 to a viewer on every admin write, and lets it read", async () => {
    const admin = operations.filter((op) => op.path.startsWith("/api/admin/") && op.schemes.includes("bearerAuth"));
    const wrong: string[] = [];
    for (const op of admin) {
      const read = op.method === "GET" || VIEWER_READS_BY_POST.has(`${op.method} ${op.path}`);
      const got = await status(op.method, op.path, viewer.access);
      if (read ? got === 403 || got === 401 : got !== 403) wrong.push(`${op.method} ${op.path}: ${got}`);
    }
    expect(wrong).toEqual([]);
  });
});
