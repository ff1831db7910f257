import { env } from "cloudflare:workers";
import { inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { RevocationList } from "../../src/auth/revocation/port.ts";
import { postgresRevocationList, purgeExpiredRevocations } from "../../src/auth/revocation/postgres.ts";
import { redisRevocationList } from "../../src/auth/revocation/redis.ts";
import { createRedis } from "../../src/cache/redis.ts";
import { createDb } from "../../src/db/client.ts";
import { revokedTokens } from "../../src/db/schema/identity.ts";
import { loadConfig } from "../../src/env.ts";
import { call, stack } from "./harness.ts";
import { signedInUser } from "./identity-helpers.ts";

const loaded = loadConfig(env);
if (!loaded.ok) throw new Error(`test environment is invalid: ${JSON.stringify(loaded.issues)}`);
const config = loaded.config;
const now = () => Math.floor(Date.now() / 1000);

/** The behaviour every revocation list must have, run against each adapter. */
function conformance(name: string, make: () => RevocationList, enabled = true) {
  describe.skipIf(!enabled)(`revocation list: ${name}`, () => {
    it("remembers a revoked token until it expires", async () => {
      const list = make();
      const id = crypto.randomUUID();
      expect(await list.isRevoked(id)).toBe(false);
      await list.revoke(id, now() + 600);
      expect(await list.isRevoked(id)).toBe(true);
    });

    it("is idempotent", async () => {
      const list = make();
      const id = crypto.randomUUID();
      await list.revoke(id, now() + 600);
      await list.revoke(id, now() + 600);
      expect(await list.isRevoked(id)).toBe(true);
    });

    it("ignores tokens that have already expired", async () => {
      const list = make();
      const id = crypto.randomUUID();
      await list.revoke(id, now() - 1);
      expect(await list.isRevoked(id)).toBe(false);
    });

    it("forgets an entry once the token's expiry passes", async () => {
      const list = make();
      const id = crypto.randomUUID();
      await list.revoke(id, now() + 1);
      expect(await list.isRevoked(id)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      expect(await list.isRevoked(id)).toBe(false);
    });
  });
}

conformance("postgres", () => postgresRevocationList(createDb(config)));
conformance(
  "redis (Upstash REST)",
  () => {
    const redis = createRedis(config);
    if (!redis) throw new Error("no redis");
    return redisRevocationList(redis);
  },
  stack().redis,
);

describe("redis revocation store unreachable", () => {
  it("isRevoked answers false rather than failing every sign-in (the session check in Postgres still refuses ended sessions)", async () => {
    // A port nothing listens on: every request is refused.
    const redis = createRedis({
      ...config,
      UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9",
      UPSTASH_REDIS_REST_TOKEN: "t",
    });
    if (!redis) throw new Error("no redis");
    await expect(redisRevocationList(redis).isRevoked(crypto.randomUUID())).resolves.toBe(false);
  });

  it("with Redis gone a live session still signs in and a logged-out token is still refused", async () => {
    const redisDown = { UPSTASH_REDIS_REST_URL: "http://127.0.0.1:9", UPSTASH_REDIS_REST_TOKEN: "t" };
    const live = await signedInUser();
    expect((await call("GET", "/api/auth/me", { token: live.access, overrides: redisDown })).status).toBe(200);
    const out = await signedInUser();
    expect((await call("POST", "/api/auth/logout", { token: out.access })).status).toBe(204);
    expect((await call("GET", "/api/auth/me", { token: out.access, overrides: redisDown })).status).toBe(401);
  });
});

describe("postgres revocation clean-up", () => {
  it("purges only expired rows", async () => {
    const db = createDb(config);
    const list = postgresRevocationList(db);
    const live = crypto.randomUUID();
    const expired = crypto.randomUUID();
    await list.revoke(live, now() + 600);
    await list.revoke(expired, now() + 1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await purgeExpiredRevocations(db);
    const stored = await db
      .select({ jti: revokedTokens.jti })
      .from(revokedTokens)
      .where(inArray(revokedTokens.jti, [live, expired]));
    expect(stored.map((row) => row.jti)).toEqual([live]);
  });
});
