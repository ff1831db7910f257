import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call } from "./harness.ts";
import { db, freshIp, PASSWORD, uniqueEmail } from "./identity-helpers.ts";

const TOKEN = "test-bootstrap-token-0123456789abcdef";
let hidden: string[] = [];

// Bootstrap works only while no admin exists: set aside the admins other files made, then restore them.
beforeAll(async () => {
  const result = (await db.execute(
    sql`update users set role = 'viewer' where role = 'admin' and deleted_at is null returning id`,
  )) as unknown as { rows: { id: string }[] };
  hidden = result.rows.map((r) => r.id);
});
afterAll(async () => {
  for (const id of hidden) await db.execute(sql`update users set role = 'admin' where id = ${id}`);
});

describe("POST /api/admin/bootstrap", () => {
  const body = () => ({ email: uniqueEmail("first-admin"), password: PASSWORD, full_name: "First Admin" });

  it("refuses a missing or wrong token", async () => {
    expect((await call("POST", "/api/admin/bootstrap", { json: body() })).status).toBe(401);
    const wrong = await call("POST", "/api/admin/bootstrap", {
      json: body(),
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
  });

  it("validates the body like registration", async () => {
    const res = await call("POST", "/api/admin/bootstrap", {
      json: { ...body(), password: "short" },
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(422);
  });

  it("creates the first admin once; afterwards 409", async () => {
    const first = body();
    const created = await call("POST", "/api/admin/bootstrap", {
      json: first,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(created.status).toBe(201);
    expect(created.body.role).toBe("admin");
    hidden.push(created.body.id);
    const again = await call("POST", "/api/admin/bootstrap", {
      json: body(),
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(again.status).toBe(409);
    const login = await call("POST", "/api/auth/login", {
      json: { email: first.email, password: PASSWORD },
      ip: freshIp(),
    });
    expect(login.body.user.role).toBe("admin");
    const audit = (await db.execute(
      sql`select actor_type from audit_log where action = 'admin.bootstrap' and target_id = ${created.body.id}`,
    )) as unknown as { rows: { actor_type: string }[] };
    expect(audit.rows).toEqual([{ actor_type: "system" }]);
    // Keep the suite's invariant: this admin is set aside too until afterAll restores everyone.
    await db.execute(sql`update users set role = 'viewer' where id = ${created.body.id}`);
  });

  it("lets exactly one of two concurrent bootstraps win", async () => {
    const results = await Promise.all(
      [body(), body()].map((json) =>
        call("POST", "/api/admin/bootstrap", { json, headers: { authorization: `Bearer ${TOKEN}` } }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    const winner = results.find((r) => r.status === 201);
    hidden.push(winner?.body.id);
  });
});
