import fc from "fast-check";
import { base64url, utf8 } from "../../../src/auth/crypto.ts";
import { signAccessToken } from "../../../src/auth/jwt.ts";
import { call, OPERATOR_TOKEN } from "../harness.ts";
import { config, freshIp, PASSWORD, signedInUser, type TestUser } from "../identity-helpers.ts";
import type { Caller } from "./roles.ts";

// The fuzzer's own signed-in users (one per role, each with an API key too), and the bad credentials it sends:
// expired, forged, unsigned (alg none), signed by an unknown key, or garbage.

export interface Identity extends TestUser {
  role: Exclude<Caller, "anonymous">;
  apiKey: string;
}

export type Identities = Record<Exclude<Caller, "anonymous">, Identity>;

async function identity(role: Identity["role"]): Promise<Identity> {
  const user = await signedInUser(role);
  const key = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "fuzz" } });
  if (key.status !== 201) throw new Error(`api key for the fuzzer's ${role}: ${key.status}`);
  return { ...user, role, apiKey: key.body.key };
}

export async function createIdentities(): Promise<Identities> {
  const [user, viewer, admin] = await Promise.all([identity("user"), identity("viewer"), identity("admin")]);
  return { user, viewer, admin };
}

/** A second session of the identity, for routes that end the session they are called with (logout). */
export async function disposableSession(who: Identity): Promise<string> {
  const login = await call("POST", "/api/auth/login", {
    json: { email: who.email, password: PASSWORD },
    ip: freshIp(),
  });
  if (login.status !== 200) throw new Error(`fuzzer re-login as ${who.role}: ${login.status}`);
  return login.body.access_token;
}

const json = (value: unknown) => base64url(utf8(JSON.stringify(value)));
const parts = (token: string) => token.split(".") as [string, string, string];

/** Bad credentials, named for the report, built from the fuzzer's real tokens so only one thing is wrong. */
export async function badCredentials(ids: Identities): Promise<Record<string, Record<string, string>>> {
  const admin = ids.admin;
  const claims = { sub: admin.id, role: "admin" as const, sid: crypto.randomUUID() };
  const keys = config.JWT_SIGNING_KEYS;
  const expired = await signAccessToken(claims, {
    keys,
    ttlSeconds: 900,
    issuer: config.JWT_ISSUER,
    now: Date.now() - 86_400_000,
  });
  const unknownKid = await signAccessToken(claims, {
    keys: [{ kid: "fuzz-unknown", secret: "fuzz-secret-0123456789abcdef0123" }],
    ttlSeconds: 900,
    issuer: config.JWT_ISSUER,
  });
  const [userHeader, userPayload, userSignature] = parts(ids.user.access);
  const payload = JSON.parse(atob(userPayload.replace(/-/g, "+").replace(/_/g, "/")));
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const [adminHeader, adminPayload, adminSignature] = parts(admin.access);
  const flipped = adminSignature.at(-2) === "A" ? "B" : "A";
  return {
    "expired token": bearer(expired.token),
    "token signed by an unknown key": bearer(unknownKid.token),
    "user token with its role forged to admin": bearer(
      `${userHeader}.${json({ ...payload, role: "admin" })}.${userSignature}`,
    ),
    "admin token with one signature character changed": bearer(
      `${adminHeader}.${adminPayload}.${adminSignature.slice(0, -2)}${flipped}${adminSignature.at(-1)}`,
    ),
    "alg none": bearer(`${json({ alg: "none", typ: "JWT", kid: keys[0]?.kid })}.${adminPayload}.`),
    "alg HS512": bearer(`${json({ alg: "HS512", typ: "JWT", kid: keys[0]?.kid })}.${adminPayload}.${adminSignature}`),
    "garbage bearer": bearer("not.a.jwt"),
    "garbage JWT-shaped bearer": bearer("eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"),
    "bearer with a refresh token": bearer(admin.refresh),
    "basic auth": { authorization: `Basic ${btoa("admin:admin")}` },
    "empty bearer": { authorization: "Bearer " },
    "forged API key": { "x-api-key": `${admin.apiKey.slice(0, -4)}AAAA` },
    "garbage API key": { "x-api-key": "va_k_garbage" },
    "API key as a bearer, forged": bearer(`${admin.apiKey.slice(0, -4)}AAAA`),
    "operator token in x-api-key": { "x-api-key": OPERATOR_TOKEN },
  };
}

/** How a role's identity signs in for one request: its access token or its API key. */
export const signInWith = fc.constantFrom("bearer", "apiKey");
