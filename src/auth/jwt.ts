import type { Config, SigningKey } from "../config.ts";
import { base64url, fromBase64url, utf8 } from "./crypto.ts";
import type { Role } from "./principal.ts";

// Access tokens: HS256 JWTs with a key id. The first configured key signs; every configured key
// verifies, so a new key can be introduced before the old one is retired (docs/runbooks/key-rotation.md).

interface AccessClaims {
  sub: string;
  role: Role;
  sid: string; // session (refresh family) id
  jti: string;
  iat: number;
  exp: number;
  iss: string;
}

type TokenProblem =
  | "malformed"
  | "unsupported_algorithm"
  | "unknown_key"
  | "bad_signature"
  | "expired"
  | "invalid_claims";

export class TokenError extends Error {
  readonly problem: TokenProblem;
  constructor(problem: TokenProblem) {
    super(`access token rejected: ${problem}`);
    this.problem = problem;
  }
}

const keyCache = new Map<string, Promise<CryptoKey>>();
const hmacKey = (secret: string) => {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keyCache.set(secret, key);
  }
  return key;
};

const encodeJson = (value: unknown) => base64url(utf8(JSON.stringify(value)));

export async function signAccessToken(
  claims: Omit<AccessClaims, "iat" | "exp" | "iss" | "jti">,
  options: { keys: SigningKey[]; ttlSeconds: number; issuer: string; now?: number },
): Promise<{ token: string; claims: AccessClaims }> {
  const signer = options.keys[0];
  if (!signer) throw new Error("no signing key configured");
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  const full: AccessClaims = {
    ...claims,
    jti: crypto.randomUUID(),
    iat,
    exp: iat + options.ttlSeconds,
    iss: options.issuer,
  };
  const input = `${encodeJson({ alg: "HS256", typ: "JWT", kid: signer.kid })}.${encodeJson(full)}`;
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(signer.secret), utf8(input));
  return { token: `${input}.${base64url(signature)}`, claims: full };
}

const decodeJson = (part: string): Record<string, unknown> | undefined => {
  const bytes = fromBase64url(part);
  if (!bytes) return undefined;
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
};

/** Verification options from the configuration: its keys, issuer and token lifetime. */
export const accessTokenCheck = (
  config: Pick<Config, "JWT_SIGNING_KEYS" | "JWT_ISSUER" | "ACCESS_TOKEN_TTL_SECONDS">,
) => ({
  keys: config.JWT_SIGNING_KEYS,
  issuer: config.JWT_ISSUER,
  maxTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
});

/** How far a token's issue time may lie in the future: clocks of signer and verifier drift a little. */
const CLOCK_SKEW_SECONDS = 60;

/**
 * Verifies signature (constant-time, by WebCrypto), algorithm, key id, expiry and claim shapes, and refuses
 * a token issued in the future or living longer than `maxTtlSeconds` (the configured lifetime).
 */
export async function verifyAccessToken(
  token: string,
  options: { keys: SigningKey[]; issuer: string; maxTtlSeconds: number; now?: number },
): Promise<AccessClaims> {
  const parts = token.split(".");
  if (parts.length !== 3) throw new TokenError("malformed");
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeJson(headerPart);
  if (!header) throw new TokenError("malformed");
  // Only HS256: "none" and every other algorithm are refused before any key is touched.
  if (header.alg !== "HS256") throw new TokenError("unsupported_algorithm");
  const key = options.keys.find((k) => k.kid === header.kid);
  if (!key) throw new TokenError("unknown_key");
  const signature = fromBase64url(signaturePart);
  if (!signature) throw new TokenError("malformed");
  const valid = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(key.secret),
    signature,
    utf8(`${headerPart}.${payloadPart}`),
  );
  if (!valid) throw new TokenError("bad_signature");
  const claims = decodeJson(payloadPart);
  if (!claims || !isAccessClaims(claims) || claims.iss !== options.issuer) throw new TokenError("invalid_claims");
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (claims.iat > now + CLOCK_SKEW_SECONDS || claims.exp - claims.iat > options.maxTtlSeconds) {
    throw new TokenError("invalid_claims");
  }
  if (claims.exp <= now) throw new TokenError("expired");
  return claims;
}

const isAccessClaims = (c: Record<string, unknown>): c is AccessClaims & Record<string, unknown> =>
  typeof c.sub === "string" &&
  typeof c.sid === "string" &&
  typeof c.jti === "string" &&
  typeof c.iss === "string" &&
  (c.role === "user" || c.role === "viewer" || c.role === "admin") &&
  Number.isInteger(c.iat) &&
  Number.isInteger(c.exp);
