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
