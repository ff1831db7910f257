import { describe, expect, it } from "vitest";
import { base64url, utf8 } from "../../src/auth/crypto.ts";
import { signAccessToken, TokenError, verifyAccessToken } from "../../src/auth/jwt.ts";

const keyA = { kid: "a", secret: "secret-a-0123456789abcdef0123456789" };
const keyB = { kid: "b", secret: "secret-b-0123456789abcdef0123456789" };
const claims = { sub: "0f8fad5b-d9cb-469f-a165-70867728950e", role: "user" as const, sid: "s1" };
const sign = (keys = [keyA], now?: number, ttlSeconds = 900) =>
  signAccessToken(claims, { keys, ttlSeconds, issuer: "voiceassist", now });
const verify = (token: string, keys = [keyA, keyB], now?: number) =>
  verifyAccessToken(token, { keys, issuer: "voiceassist", maxTtlSeconds: 900, now });

async function problemOf(promise: Promise<unknown>) {
  try {
    await promise;
    return "accepted";
  } catch (error) {
    return error instanceof TokenError ? error.problem : String(error);
  }
}

const segments = (token: string) => token.split(".") as [string, string, string];
const json = (value: unknown) => base64url(utf8(JSON.stringify(value)));

describe("access tokens", () => {
  it("round-trips with kid, jti, iat and exp", async () => {
    const { token, claims: issued } = await sign();
    const header = JSON.parse(atob(segments(token)[0]));
    expect(header).toEqual({ alg: "HS256", typ: "JWT", kid: "a" });
    expect(issued.exp - issued.iat).toBe(900);
    expect(await verify(token)).toEqual(issued);
  });

  it("keeps accepting tokens of a retired signer while it is still configured (rotation)", async () => {
    const { token } = await sign([keyA]);
    // Rotation step 2: B signs now, A still verifies.
    expect((await verify(token, [keyB, keyA])).sub).toBe(claims.sub);
    // Step 3: A removed, its tokens are refused.
    expect(await problemOf(verify(token, [keyB]))).toBe("unknown_key");
  });

  it("refuses a tampered payload", async () => {
    const { token } = await sign();
    const [h, p, s] = segments(token);
    const payload = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/")));
    const forged = `${h}.${json({ ...payload, role: "admin" })}.${s}`;
    expect(await problemOf(verify(forged))).toBe("bad_signature");
  });

  it("refuses alg none and other algorithms", async () => {
    const { token } = await sign();
    const [, p] = segments(token);
    expect(await problemOf(verify(`${json({ alg: "none", kid: "a" })}.${p}.`))).toBe("unsupported_algorithm");
    expect(await problemOf(verify(`${json({ alg: "HS512", kid: "a" })}.${p}.abc`))).toBe("unsupported_algorithm");
  });

  it("refuses a token issued in the future beyond the clock skew, and accepts one within it", async () => {
    const now = Date.now();
    const { token: ahead } = await sign([keyA], now + 30 * 86_400_000);
    expect(await problemOf(verify(ahead, [keyA], now))).toBe("invalid_claims");
    const { token: drifted } = await sign([keyA], now + 30_000);
    expect(await problemOf(verify(drifted, [keyA], now))).toBe("accepted");
  });

  it("refuses a token that lives longer than the configured lifetime", async () => {
    const { token } = await sign([keyA], undefined, 30 * 86_400);
    expect(await problemOf(verify(token))).toBe("invalid_claims");
  });

  it("refuses an unknown kid", async () => {
    const { token } = await sign([{ kid: "gone", secret: keyA.secret }]);
    expect(await problemOf(verify(token))).toBe("unknown_key");
  });

  it("refuses an expired token", async () => {
    const { token } = await sign([keyA], Date.now() - 3_600_000);
    expect(await problemOf(verify(token))).toBe("expired");
  });

  it("refuses a token signed with the right kid but another secret", async () => {
    const { token } = await sign([{ kid: "a", secret: keyB.secret }]);
    expect(await problemOf(verify(token))).toBe("bad_signature");
  });

  it.each([["not-a-jwt"], ["a.b"], ["a.b.c.d"], ["!!!.???.***"]])("refuses malformed %s", async (token) => {
    expect(await problemOf(verify(token))).toBe("malformed");
  });
});
