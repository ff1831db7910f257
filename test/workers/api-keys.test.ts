import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { call } from "./harness.ts";
import { db, signedInUser } from "./identity-helpers.ts";

describe("API keys", () => {
  it("creates a key shown once, prefixed va_k_, stored hashed; it authenticates via X-API-Key", async () => {
    const user = await signedInUser();
    const created = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "ci" } });
    expect(created.status).toBe(201);
    expect(created.body.key).toMatch(/^va_k_[0-9a-f]{12}_[A-Za-z0-9_-]{32,}$/);
    expect(created.body.key.startsWith(created.body.prefix)).toBe(true);
    expect(created.body.role).toBe("user");
    const stored = (await db.execute(sql`select key_hash from api_keys where id = ${created.body.id}`)) as unknown as {
      rows: { key_hash: string }[];
    };
    expect(stored.rows[0]?.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.rows[0]?.key_hash).not.toContain(created.body.key);

    const me = await call("GET", "/api/auth/me", { apiKey: created.body.key });
    expect(me.status).toBe(200);
    expect(me.body.id).toBe(user.id);

    const list = await call("GET", "/api/users/me/api-keys", { token: user.access });
    expect(list.body.items).toHaveLength(1);
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);
    expect(list.body.items[0].last_used_at).not.toBeNull();
  });

  it("revokes a key; a revoked, expired or wrong key is refused", async () => {
    const user = await signedInUser();
    const created = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "tmp" } });
    expect((await call("DELETE", `/api/users/me/api-keys/${created.body.id}`, { token: user.access })).status).toBe(
      204,
    );
    expect((await call("GET", "/api/auth/me", { apiKey: created.body.key })).status).toBe(401);

    const expiring = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "old" } });
    await db.execute(sql`update api_keys set expires_at = now() - interval '1 second' where id = ${expiring.body.id}`);
    expect((await call("GET", "/api/auth/me", { apiKey: expiring.body.key })).status).toBe(401);

    const forged = `${expiring.body.key.slice(0, 18)}${"A".repeat(43)}`;
    expect((await call("GET", "/api/auth/me", { apiKey: forged })).status).toBe(401);
    expect((await call("GET", "/api/auth/me", { apiKey: "va_k_garbage" })).status).toBe(401);
  });

  it("carries at most its owner's role, even after the owner is downgraded", async () => {
    const user = await signedInUser();
    const tooHigh = await call("POST", "/api/users/me/api-keys", {
      token: user.access,
      json: { name: "x", role: "admin" },
    });
    expect(tooHigh.status).toBe(403);

    const admin = await signedInUser("admin");
    const key = await call("POST", "/api/users/me/api-keys", {
      token: admin.access,
      json: { name: "ops", role: "admin" },
    });
    expect((await call("GET", "/api/admin/users", { apiKey: key.body.key })).status).toBe(200);
    await db.execute(sql`update users set role = 'user' where id = ${admin.id}`);
    expect((await call("GET", "/api/admin/users", { apiKey: key.body.key })).status).toBe(403);
  });

  it("user A cannot see or revoke user B's keys", async () => {
    const a = await signedInUser();
    const b = await signedInUser();
    const bKey = await call("POST", "/api/users/me/api-keys", { token: b.access, json: { name: "b" } });
    expect((await call("GET", "/api/users/me/api-keys", { token: a.access })).body.items).toHaveLength(0);
    expect((await call("DELETE", `/api/users/me/api-keys/${bKey.body.id}`, { token: a.access })).status).toBe(404);
    expect((await call("GET", "/api/auth/me", { apiKey: bKey.body.key })).status).toBe(200);
  });

  it.each([
    [{}, "body.name"],
    [{ name: "x", expires_in_days: 0 }, "body.expires_in_days"],
    [{ name: "x", expires_in_days: 1000 }, "body.expires_in_days"],
    [{ name: "x", role: "root" }, "body.role"],
  ])("refuses %j on %s", async (json, field) => {
    const user = await signedInUser();
    const res = await call("POST", "/api/users/me/api-keys", { token: user.access, json });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });
});
