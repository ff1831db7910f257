import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { cleanUpIdentity, recordIdentityGauges } from "../../src/auth/jobs.ts";
import { call, callRaw, OPERATOR_TOKEN } from "./harness.ts";
import { db, freshIp, PASSWORD, signedInUser } from "./identity-helpers.ts";

const count = async (query: ReturnType<typeof sql>) =>
  ((await db.execute(query)) as unknown as { rows: { n: number }[] }).rows[0]?.n ?? -1;

describe("identity metrics", () => {
  it("counts registrations, logins by outcome, refreshes and reuse", async () => {
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const user = await signedInUser();
    await call("POST", "/api/auth/login", {
      json: { email: user.email, password: "Wrong-password-123" },
      ip: freshIp(),
    });
    await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() });
    // Metric name and labels, without the environment column (blob2).
    const names = writes.mock.calls.map(([p]) => {
      const [name, , ...labels] = p?.blobs ?? [];
      return [name, ...labels].join(":");
    });
    expect(names).toEqual(
      expect.arrayContaining([
        "auth_registrations_total",
        "auth_logins_total:success",
        "auth_logins_total:failure",
        "auth_refreshes_total:rotated",
      ]),
    );
    writes.mockRestore();
  });

  it("sets the active-session, daily- and monthly-active-user gauges from the database", async () => {
    const gauges = async () => {
      const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
      await recordIdentityGauges(env);
      const value = (name: string) => writes.mock.calls.find(([p]) => p?.blobs?.[0] === name)?.[0]?.doubles?.[0];
      const read = {
        sessions: value("auth_active_sessions"),
        dau: value("auth_daily_active_users"),
        mau: value("auth_monthly_active_users"),
      };
      writes.mockRestore();
      return read;
    };
    const before = await gauges();
    // Two new users, each signed in once and active today: every gauge rises by exactly two. A third was active
    // 29 days ago (inside the month, outside today) and a fourth 30 days ago (outside both).
    for (const user of [await signedInUser(), await signedInUser()]) {
      await call("GET", "/api/auth/me", { token: user.access });
    }
    const [earlier, older] = [await signedInUser(), await signedInUser()];
    await db.execute(sql`insert into user_activity (user_id, day) values
      (${earlier.id}, (now() at time zone 'utc')::date - 29), (${older.id}, (now() at time zone 'utc')::date - 30)`);
    const after = await gauges();
    expect(after.sessions).toBe((before.sessions ?? Number.NaN) + 4);
    expect(after.dau).toBe((before.dau ?? Number.NaN) + 2);
    expect(after.mau).toBe((before.mau ?? Number.NaN) + 3);
    const exposition = await (await callRaw("GET", "/metrics", { token: OPERATOR_TOKEN })).text();
    expect(exposition).toContain("# TYPE voiceassist_auth_active_sessions gauge");
    expect(exposition).toMatch(new RegExp(`^voiceassist_auth_active_sessions ${after.sessions}$`, "m"));
  });
});

describe("auth_session_duration_seconds", () => {
  const STARTED_HOURS_AGO = 2;

  /** The auth_session_duration_seconds samples written while `act` runs, as [end label, seconds]. */
  async function sessionEnds(act: () => Promise<unknown>): Promise<[string, number][]> {
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    try {
      await act();
      return writes.mock.calls
        .filter(([p]) => p?.blobs?.[0] === "auth_session_duration_seconds")
        .map(([p]) => [String(p?.blobs?.[2]), Number(p?.doubles?.[0])]);
    } finally {
      writes.mockRestore();
    }
  }

  /** A user with `sessions` live sessions, all started STARTED_HOURS_AGO (so a duration is told from zero). */
  async function userWithSessions(sessions: number) {
    const user = await signedInUser();
    const more = [];
    for (let i = 1; i < sessions; i++) {
      const login = await call("POST", "/api/auth/login", {
        json: { email: user.email, password: PASSWORD },
        ip: freshIp(),
      });
      more.push(login.body as { access_token: string; refresh_token: string });
    }
    await db.execute(sql`update auth_sessions set created_at = now() - make_interval(hours => ${STARTED_HOURS_AGO})
      where user_id = ${user.id}`);
    return { user, more };
  }

  // Each sample is at least the backdated age and far below the next bucket's reach (the test takes seconds).
  const lasted = (samples: [string, number][]) =>
    samples.map(([end, seconds]) => [
      end,
      seconds >= STARTED_HOURS_AGO * 3600 && seconds < STARTED_HOURS_AGO * 3600 + 600,
    ]);

  it("observes a password change that ends three sessions three times (password_change)", async () => {
    const { user } = await userWithSessions(3);
    const samples = await sessionEnds(async () => {
      const res = await call("POST", "/api/users/me/change-password", {
        token: user.access,
        json: { current_password: PASSWORD, new_password: "Another-Long-Passphrase-7" },
      });
      expect(res.status).toBe(204);
    });
    expect(lasted(samples)).toEqual([
      ["password_change", true],
      ["password_change", true],
      ["password_change", true],
    ]);
  });

  it("observes a logout and a session the user ends from its list as logout, once each", async () => {
    const { user, more } = await userWithSessions(2);
    const other = (await call("GET", "/api/auth/sessions", { token: user.access })).body.items.find(
      (s: { current: boolean }) => !s.current,
    );
    const samples = await sessionEnds(async () => {
      expect((await call("DELETE", `/api/auth/sessions/${other.id}`, { token: user.access })).status).toBe(204);
      expect((await call("POST", "/api/auth/logout", { token: user.access })).status).toBe(204);
      // Already ended: refused, and nothing more is observed.
      expect((await call("POST", "/api/auth/logout", { token: more[0]?.access_token })).status).toBe(401);
    });
    expect(lasted(samples)).toEqual([
      ["logout", true],
      ["logout", true],
    ]);
  });

  it("observes a session revoked for refresh-token reuse once (reuse), not again when the token comes back", async () => {
    const { user } = await userWithSessions(1);
    const first = await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() });
    expect(first.status).toBe(200);
    // Past the race grace window, the spent token coming back is theft.
    await db.execute(sql`update refresh_tokens set used_at = now() - interval '1 minute' where used_at is not null
      and session_id in (select id from auth_sessions where user_id = ${user.id})`);
    const samples = await sessionEnds(async () => {
      for (let i = 0; i < 2; i++) {
        const reuse = await call("POST", "/api/auth/refresh", { json: { refresh_token: user.refresh }, ip: freshIp() });
        expect(reuse.status).toBe(401);
      }
    });
    expect(lasted(samples)).toEqual([["reuse", true]]);
  });

  it("observes every session a password reset ends (password_reset)", async () => {
    const admin = await signedInUser("admin");
    const { user } = await userWithSessions(2);
    const issued = await call("POST", `/api/admin/users/${user.id}/password-reset`, { token: admin.access });
    const samples = await sessionEnds(async () => {
      const redeem = { token: issued.body.reset_token, new_password: "Fresh-Meadow-Compass-91" };
      expect((await call("POST", "/api/auth/password-reset", { json: redeem })).status).toBe(204);
    });
    expect(lasted(samples)).toEqual([
      ["password_reset", true],
      ["password_reset", true],
    ]);
  });

  it("observes deactivation and deletion by an admin, only for sessions still live", async () => {
    const admin = await signedInUser("admin");
    const deactivated = await userWithSessions(2);
    const deleted = await userWithSessions(1);
    const samples = await sessionEnds(async () => {
      const path = (id: string, rest = "") => `/api/admin/users/${id}${rest}`;
      expect((await call("POST", path(deactivated.user.id, "/deactivate"), { token: admin.access })).status).toBe(200);
      expect((await call("POST", path(deactivated.user.id, "/activate"), { token: admin.access })).status).toBe(200);
      // Its sessions ended at deactivation: deleting the user ends none.
      expect((await call("DELETE", path(deactivated.user.id), { token: admin.access })).status).toBe(200);
      expect((await call("DELETE", path(deleted.user.id), { token: admin.access })).status).toBe(200);
    });
    expect(lasted(samples)).toEqual([
      ["deactivated", true],
      ["deactivated", true],
      ["deleted", true],
    ]);
  });
});

describe("daily identity clean-up", () => {
  it("drops long-ended sessions and keeps live ones", async () => {
    const user = await signedInUser();
    await call("POST", "/api/auth/login", { json: { email: user.email, password: PASSWORD }, ip: freshIp() });
    await db.execute(sql`update auth_sessions set revoked_at = now() - interval '40 days'
      where id = (select id from auth_sessions where user_id = ${user.id} order by created_at limit 1)`);
    await cleanUpIdentity(env);
    expect(await count(sql`select count(*)::int as n from auth_sessions where user_id = ${user.id}`)).toBe(1);
  });
});

describe("operator routes accept admins and viewers once roles exist", () => {
  it("serves /health/detailed and /metrics to a viewer, refuses a plain user", async () => {
    const viewer = await signedInUser("viewer");
    const user = await signedInUser();
    expect((await call("GET", "/health/detailed", { token: viewer.access })).status).toBe(200);
    const metrics = (token: string) => callRaw("GET", "/metrics", { token });
    expect((await metrics(viewer.access)).status).toBe(200);
    expect((await metrics(user.access)).status).toBe(403);
  });
});
