import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { signAccessToken } from "../../src/auth/jwt.ts";
import { call } from "./harness.ts";
import { auditFor, config, db, freshIp, PASSWORD, signedInUser, uniqueEmail } from "./identity-helpers.ts";

describe("POST /api/auth/register", () => {
  it("creates a user, trimming and lowercasing the email, with no password fields", async () => {
    const email = uniqueEmail("Mixed");
    const res = await call("POST", "/api/auth/register", {
      json: { email: `  ${email.toUpperCase()} `, password: PASSWORD, full_name: "Dr Ada" },
      ip: freshIp(),
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ email: email.toLowerCase(), full_name: "Dr Ada", role: "user", is_active: true });
    expect(JSON.stringify(res.body)).not.toMatch(/password/i);
    expect((await auditFor(res.body.id))[0]).toMatchObject({ action: "auth.register", outcome: "success" });
  });

  it("answers a duplicate with a 409 that does not say the email exists", async () => {
    const email = uniqueEmail();
    const json = { email, password: PASSWORD, full_name: "A" };
    expect((await call("POST", "/api/auth/register", { json, ip: freshIp() })).status).toBe(201);
    const dup = await call("POST", "/api/auth/register", {
      json: { ...json, email: email.toUpperCase() },
      ip: freshIp(),
    });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe("CONFLICT");
    expect(dup.body.detail).not.toMatch(/exists|taken|already registered/i);
  });

  it.each([
    [{ email: "not-an-email", password: PASSWORD, full_name: "A" }, "body.email"],
    [{ email: "a@b.test", password: "short", full_name: "A" }, "body.password"],
    [{ email: "a@b.test", password: "passwordpassword", full_name: "A" }, "body.password"],
    [{ email: "longname.person@b.test", password: "longname.person@b.test", full_name: "A" }, "body.password"],
    [{ email: "a@b.test", password: PASSWORD, full_name: "" }, "body.full_name"],
    [{ email: "a@b.test", password: PASSWORD }, "body.full_name"],
  ])("refuses %j on %s", async (json, field) => {
    const res = await call("POST", "/api/auth/register", { json, ip: freshIp() });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });

  it("limits registrations to 5 per hour per IP", async () => {
    const ip = freshIp();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await call("POST", "/api/auth/register", {
        json: { email: uniqueEmail(), password: PASSWORD, full_name: "Burst" },
        ip,
      });
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    expect(statuses).toEqual([201, 201, 201, 201, 201, 429]);
  });
});

describe("POST /api/auth/login", () => {
  it("returns the token pair and the user", async () => {
    const user = await signedInUser();
    const res = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: PASSWORD },
      ip: freshIp(),
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      token_type: "Bearer",
      expires_in: config.ACCESS_TOKEN_TTL_SECONDS,
      user: { id: user.id, email: user.email, role: "user" },
    });
    expect(res.body.refresh_expires_in).toBeGreaterThan(23 * 3600);
    const header = JSON.parse(atob(res.body.access_token.split(".")[0]));
    expect(header.kid).toBe("test-2");
    const actions = (await auditFor(user.id)).map((r) => `${r.action}:${r.outcome}`);
    expect(actions).toContain("auth.login:success");
  });

  it("gives the same answer for a wrong password and an unknown email, and audits the failure", async () => {
    const user = await signedInUser();
    const wrong = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: "Wrong-password-123" },
      ip: freshIp(),
    });
    const unknown = await call("POST", "/api/auth/login", {
      json: { email: uniqueEmail(), password: PASSWORD },
      ip: freshIp(),
    });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.detail).toBe(unknown.body.detail);
    expect((await auditFor(user.id))[0]).toMatchObject({ action: "auth.login", outcome: "failure" });
  });

  it("upgrades a weaker stored hash at the next login", async () => {
    const user = await signedInUser();
    const { hashPassword } = await import("../../src/auth/password.ts");
    await db.execute(sql`update users set password_hash = ${await hashPassword(PASSWORD, 1000)} where id = ${user.id}`);
    expect(
      (await call("POST", "/api/auth/login", { json: { email: user.email, password: PASSWORD }, ip: freshIp() }))
        .status,
    ).toBe(200);
    const rows = (await db.execute(sql`select password_hash from users where id = ${user.id}`)) as unknown as {
      rows: { password_hash: string }[];
    };
    expect(rows.rows[0]?.password_hash).toMatch(/^pbkdf2-sha256\$100000\$/);
  });

  it("locks out progressively after repeated failures, then 429 with Retry-After", async () => {
    const user = await signedInUser();
    const ip = freshIp();
    const statuses: number[] = [];
    for (let i = 0; i < config.LOGIN_LOCKOUT_THRESHOLD + 1; i++) {
      const res = await call("POST", "/api/auth/login", {
        json: { email: user.email, password: "Wrong-password-123" },
        ip,
      });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, config.LOGIN_LOCKOUT_THRESHOLD)).toEqual(Array(config.LOGIN_LOCKOUT_THRESHOLD).fill(401));
    const locked = await call("POST", "/api/auth/login", { json: { email: user.email, password: PASSWORD }, ip });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
    // Another address is not locked out by this one's failures.
    expect(
      (await call("POST", "/api/auth/login", { json: { email: user.email, password: PASSWORD }, ip: freshIp() }))
        .status,
    ).toBe(200);
  });

  it("refuses a deactivated account with 403", async () => {
    const user = await signedInUser();
    await db.execute(sql`update users set is_active = false where id = ${user.id}`);
    const res = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: PASSWORD },
      ip: freshIp(),
    });
    expect(res.status).toBe(403);
  });

  it.each([
    [{ email: "x@y.test" }, "body.password"],
    [{ password: PASSWORD }, "body.email"],
  ])("refuses %j with 422 on %s", async (json, field) => {
    const res = await call("POST", "/api/auth/login", { json, ip: freshIp() });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });
});

describe("access tokens on protected routes", () => {
  it("GET /api/auth/me returns the user", async () => {
    const user = await signedInUser();
    const res = await call("GET", "/api/auth/me", { token: user.access });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, email: user.email });
  });

  it("refuses no token, a tampered token, alg none, an expired token and an unknown kid", async () => {
    const user = await signedInUser();
    const [h, p, s] = user.access.split(".") as [string, string, string];
    const payload = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/")));
    const b64 = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const expired = await signAccessToken(
      { sub: user.id, role: "user", sid: payload.sid },
      { keys: config.JWT_SIGNING_KEYS, ttlSeconds: 60, issuer: config.JWT_ISSUER, now: Date.now() - 3_600_000 },
    );
    const unknownKid = await signAccessToken(
      { sub: user.id, role: "user", sid: payload.sid },
      { keys: [{ kid: "retired", secret: "x".repeat(40) }], ttlSeconds: 60, issuer: config.JWT_ISSUER },
    );
    const cases: [string, string | undefined][] = [
      ["none", undefined],
      ["tampered", `${h}.${b64({ ...payload, role: "admin" })}.${s}`],
      ["alg none", `${b64({ alg: "none", typ: "JWT", kid: "test-2" })}.${p}.`],
      ["expired", expired.token],
      ["unknown kid", unknownKid.token],
    ];
    for (const [name, token] of cases) {
      const res = await call("GET", "/api/auth/me", { token });
      expect(res.status, name).toBe(401);
      expect(res.headers.get("www-authenticate"), name).toContain("Bearer");
    }
  });

  it("refuses the token of a deactivated or deleted user at once", async () => {
    const a = await signedInUser();
    await db.execute(sql`update users set is_active = false where id = ${a.id}`);
    expect((await call("GET", "/api/auth/me", { token: a.access })).status).toBe(401);
    const b = await signedInUser();
    await db.execute(sql`update users set deleted_at = now() where id = ${b.id}`);
    expect((await call("GET", "/api/auth/me", { token: b.access })).status).toBe(401);
  });

  it("refuses a token whose role no longer matches the database (downgrade at once)", async () => {
    const admin = await signedInUser("admin");
    expect((await call("GET", "/api/admin/users", { token: admin.access })).status).toBe(200);
    await db.execute(sql`update users set role = 'user' where id = ${admin.id}`);
    const res = await call("GET", "/api/admin/users", { token: admin.access });
    expect(res.status).toBe(401);
    expect(res.body.detail).toContain("role");
  });
});

describe("refresh, logout and sessions", () => {
  it("rotates: a new pair, and the old refresh token is spent", async () => {
    const user = await signedInUser();
    const res = await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() });
    expect(res.status).toBe(200);
    expect(res.body.refresh_token).not.toBe(user.refresh);
    expect((await call("GET", "/api/auth/me", { token: res.body.access_token })).status).toBe(200);
  });

  it("kills the whole family when a spent token is presented again, and audits it", async () => {
    const user = await signedInUser();
    const first = await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() });
    expect(first.status).toBe(200);
    // Past the race grace window, the old token coming back is theft.
    await db.execute(sql`update refresh_tokens set used_at = now() - interval '1 minute' where used_at is not null
      and session_id = (select session_id from refresh_tokens where token_hash = encode(sha256(${user.refresh}::bytea), 'hex'))`);
    const reuse = await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() });
    expect(reuse.status).toBe(401);
    // The thief's and the victim's newer tokens are dead too.
    const victim = await call("POST", "/api/auth/refresh", {
      json: { refresh_token: first.body.refresh_token },
      ip: freshIp(),
    });
    expect(victim.status).toBe(401);
    expect((await call("GET", "/api/auth/me", { token: first.body.access_token })).status).toBe(401);
    const audit = await db.execute(sql`select count(*)::int as n from audit_log where action = 'auth.refresh_reuse'
      and metadata->>'user_id' = ${user.id}`);
    expect((audit as unknown as { rows: { n: number }[] }).rows[0]?.n).toBe(1);
  });

  it("two parallel refreshes with one token: exactly one wins", async () => {
    const user = await signedInUser();
    const results = await Promise.all(
      [1, 2].map(() => call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409]);
    const winner = results.find((r) => r.status === 200);
    expect((await call("GET", "/api/auth/me", { token: winner?.body.access_token })).status).toBe(200);
  });

  it("refuses an unknown refresh token and a bad body", async () => {
    expect((await call("POST", "/api/auth/refresh", { json: { refresh_token: "nope" }, ip: freshIp() })).status).toBe(
      401,
    );
    expect((await call("POST", "/api/auth/refresh", { json: {}, ip: freshIp() })).status).toBe(422);
  });

  it("limits refreshes to 30 per minute per IP", async () => {
    const ip = freshIp();
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) {
      statuses.push((await call("POST", "/api/auth/refresh", { json: { refresh_token: `x${i}` }, ip })).status);
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(30);
    expect(statuses.at(-1)).toBe(429);
  });

  it("logout ends the session and revokes the access token at once", async () => {
    const user = await signedInUser();
    expect((await call("POST", "/api/auth/logout", { token: user.access })).status).toBe(204);
    expect((await call("GET", "/api/auth/me", { token: user.access })).status).toBe(401);
    expect(
      (await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() })).status,
    ).toBe(401);
    expect((await auditFor(user.id)).length).toBeGreaterThan(0);
  });

  it("lists sessions and ends one; another user's session is not found", async () => {
    const user = await signedInUser();
    const second = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: PASSWORD },
      ip: freshIp(),
    });
    const list = await call("GET", "/api/auth/sessions", { token: user.access });
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(2);
    expect(list.body.items.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
    const other = list.body.items.find((s: { current: boolean }) => !s.current);

    const intruder = await signedInUser();
    expect((await call("DELETE", `/api/auth/sessions/${other.id}`, { token: intruder.access })).status).toBe(404);
    expect((await call("DELETE", `/api/auth/sessions/${other.id}`, { token: user.access })).status).toBe(204);
    expect((await call("GET", "/api/auth/me", { token: second.body.access_token })).status).toBe(401);
    expect((await call("GET", "/api/auth/me", { token: user.access })).status).toBe(200);
  });

  it("expires a session after the inactivity timeout", async () => {
    const user = await signedInUser();
    await db.execute(
      sql`update auth_sessions set last_used_at = now() - interval '61 minutes' where user_id = ${user.id}`,
    );
    expect(
      (await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() })).status,
    ).toBe(401);
  });

  it("expires a session at the absolute timeout, for access tokens too", async () => {
    const user = await signedInUser();
    await db.execute(sql`update auth_sessions set expires_at = now() - interval '1 second' where user_id = ${user.id}`);
    expect((await call("GET", "/api/auth/me", { token: user.access })).status).toBe(401);
    expect(
      (await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() })).status,
    ).toBe(401);
  });
});

describe("POST /api/users/me/change-password", () => {
  it("changes the password and ends every session", async () => {
    const user = await signedInUser();
    const other = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: PASSWORD },
      ip: freshIp(),
    });
    const res = await call("POST", "/api/users/me/change-password", {
      token: user.access,
      json: { current_password: PASSWORD, new_password: "Another-Long-Passphrase-7" },
    });
    expect(res.status).toBe(204);
    expect((await call("GET", "/api/auth/me", { token: user.access })).status).toBe(401);
    expect((await call("GET", "/api/auth/me", { token: other.body.access_token })).status).toBe(401);
    const login = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: "Another-Long-Passphrase-7" },
      ip: freshIp(),
    });
    expect(login.status).toBe(200);
  });

  it("refuses a wrong current password (401) and a weak new one (422 on new_password)", async () => {
    const user = await signedInUser();
    const wrong = await call("POST", "/api/users/me/change-password", {
      token: user.access,
      json: { current_password: "Not-my-password-1", new_password: "Another-Long-Passphrase-7" },
    });
    expect(wrong.status).toBe(401);
    const weak = await call("POST", "/api/users/me/change-password", {
      token: user.access,
      json: { current_password: PASSWORD, new_password: "password1234" },
    });
    expect(weak.status).toBe(422);
    expect(weak.body.errors[0].field).toBe("body.new_password");
  });
});
