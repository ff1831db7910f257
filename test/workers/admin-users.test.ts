import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { call } from "./harness.ts";
import { auditFor, db, freshIp, PASSWORD, signedInUser } from "./identity-helpers.ts";

describe("admin user management", () => {
  it("lists and searches users with pagination and a total (admin and viewer)", async () => {
    const admin = await signedInUser("admin");
    const viewer = await signedInUser("viewer");
    const target = await signedInUser();
    const search = await call("GET", `/api/admin/users?q=${encodeURIComponent(target.email)}`, {
      token: viewer.access,
    });
    expect(search.status).toBe(200);
    expect(search.body).toMatchObject({ total: 1, page: 1, page_size: 50 });
    expect(search.body.items[0].id).toBe(target.id);
    const page = await call("GET", "/api/admin/users?page=1&page_size=2", { token: admin.access });
    expect(page.body.items).toHaveLength(2);
    expect(page.body.total).toBeGreaterThanOrEqual(3);
    expect((await call("GET", "/api/admin/users?page_size=500", { token: admin.access })).status).toBe(422);
  });

  it("gets a user; an unknown id is 404 and a malformed one 422", async () => {
    const admin = await signedInUser("admin");
    const target = await signedInUser();
    expect((await call("GET", `/api/admin/users/${target.id}`, { token: admin.access })).body.email).toBe(target.email);
    expect((await call("GET", `/api/admin/users/${crypto.randomUUID()}`, { token: admin.access })).status).toBe(404);
    expect((await call("GET", "/api/admin/users/not-a-uuid", { token: admin.access })).status).toBe(422);
  });

  it("a plain user gets 403 and a viewer cannot write", async () => {
    const user = await signedInUser();
    const viewer = await signedInUser("viewer");
    const target = await signedInUser();
    expect((await call("GET", "/api/admin/users", { token: user.access })).status).toBe(403);
    const writes: [string, string, unknown?][] = [
      ["PATCH", `/api/admin/users/${target.id}/role`, { role: "admin" }],
      ["POST", `/api/admin/users/${target.id}/deactivate`],
      ["POST", `/api/admin/users/${target.id}/password-reset`],
      ["DELETE", `/api/admin/users/${target.id}`],
    ];
    for (const [method, path, json] of writes) {
      const res = await call(method, path, { token: viewer.access, json });
      expect(res.status, `${method} ${path}`).toBe(403);
    }
  });

  it("changes a role, audited with before and after, effective at once", async () => {
    const admin = await signedInUser("admin");
    const target = await signedInUser();
    const res = await call("PATCH", `/api/admin/users/${target.id}/role`, {
      token: admin.access,
      json: { role: "viewer" },
    });
    expect(res.status).toBe(200);
    expect(res.body.role).toBe("viewer");
    expect((await call("GET", "/api/auth/me", { token: target.access })).status).toBe(401);
    const row = (await db.execute(
      sql`select actor_id, before, after from audit_log where action = 'admin.user.role_changed' and target_id = ${target.id}`,
    )) as unknown as { rows: { actor_id: string; before: unknown; after: unknown }[] };
    expect(row.rows[0]).toEqual({ actor_id: admin.id, before: { role: "user" }, after: { role: "viewer" } });
    expect(
      (await call("PATCH", `/api/admin/users/${target.id}/role`, { token: admin.access, json: { role: "root" } }))
        .status,
    ).toBe(422);
  });

  it("never demotes, deactivates or deletes the last active admin", async () => {
    const admin = await signedInUser("admin");
    const others = (await db.execute(
      sql`update users set role = 'user' where role = 'admin' and id <> ${admin.id} returning id`,
    )) as unknown as { rows: { id: string }[] };
    try {
      const helper = await signedInUser("viewer");
      await db.execute(sql`update users set role = 'admin' where id = ${helper.id}`);
      await db.execute(sql`update users set is_active = false where id = ${helper.id}`);
      expect(
        (await call("PATCH", `/api/admin/users/${admin.id}/role`, { token: admin.access, json: { role: "user" } }))
          .status,
      ).toBe(409);
      expect((await call("POST", `/api/admin/users/${admin.id}/deactivate`, { token: admin.access })).status).toBe(409);
    } finally {
      for (const { id } of others.rows) await db.execute(sql`update users set role = 'admin' where id = ${id}`);
    }
  });

  it("deactivates (ending sessions at once) and reactivates", async () => {
    const admin = await signedInUser("admin");
    const target = await signedInUser();
    const off = await call("POST", `/api/admin/users/${target.id}/deactivate`, { token: admin.access });
    expect(off.status).toBe(200);
    expect(off.body.is_active).toBe(false);
    expect((await call("GET", "/api/auth/me", { token: target.access })).status).toBe(401);
    expect(
      (await call("POST", "/api/auth/refresh", { json: { refresh_token: target.refresh }, ip: freshIp() })).status,
    ).toBe(401);
    const on = await call("POST", `/api/admin/users/${target.id}/activate`, { token: admin.access });
    expect(on.body.is_active).toBe(true);
    expect(
      (await call("POST", "/api/auth/login", { json: { email: target.email, password: PASSWORD }, ip: freshIp() }))
        .status,
    ).toBe(200);
    const actions = (await auditFor(target.id)).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(["admin.user.deactivated", "admin.user.activated"]));
    expect((await call("POST", `/api/admin/users/${target.id}/explode`, { token: admin.access })).status).toBe(422);
  });

  it("resets a password through a one-time token", async () => {
    const admin = await signedInUser("admin");
    const target = await signedInUser();
    const issued = await call("POST", `/api/admin/users/${target.id}/password-reset`, { token: admin.access });
    expect(issued.status).toBe(201);
    const redeem = { token: issued.body.reset_token, new_password: "Fresh-Meadow-Compass-91" };
    expect(
      (await call("POST", "/api/auth/password-reset", { json: { ...redeem, new_password: "short" } })).status,
    ).toBe(422);
    expect((await call("POST", "/api/auth/password-reset", { json: redeem })).status).toBe(204);
    expect((await call("POST", "/api/auth/password-reset", { json: redeem })).status).toBe(400);
    expect((await call("GET", "/api/auth/me", { token: target.access })).status).toBe(401);
    const login = await call("POST", "/api/auth/login", {
      json: { email: target.email, password: "Fresh-Meadow-Compass-91" },
      ip: freshIp(),
    });
    expect(login.status).toBe(200);
  });

  it("deletes softly first, then permanently", async () => {
    const admin = await signedInUser("admin");
    const target = await signedInUser();
    expect((await call("DELETE", `/api/admin/users/${target.id}?permanent=true`, { token: admin.access })).status).toBe(
      409,
    );
    const soft = await call("DELETE", `/api/admin/users/${target.id}`, { token: admin.access });
    expect(soft.status).toBe(200);
    expect(soft.body.deleted_at).not.toBeNull();
    // A deleted user is not changed any more: role, like activate and reset, answers 409.
    const role = await call("PATCH", `/api/admin/users/${target.id}/role`, {
      token: admin.access,
      json: { role: "viewer" },
    });
    expect(role.status).toBe(409);
    expect((await call("GET", "/api/auth/me", { token: target.access })).status).toBe(401);
    expect(
      (await call("GET", "/api/admin/users?status=deleted", { token: admin.access })).body.items.map(
        (u: { id: string }) => u.id,
      ),
    ).toContain(target.id);
    expect((await call("DELETE", `/api/admin/users/${target.id}?permanent=true`, { token: admin.access })).status).toBe(
      204,
    );
    expect((await call("GET", `/api/admin/users/${target.id}`, { token: admin.access })).status).toBe(404);
    const actions = (await auditFor(target.id)).map((r) => r.action);
    expect(actions.filter((a) => a === "admin.user.deleted")).toHaveLength(2);
  });
});
