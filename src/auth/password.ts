import { base64url, fromBase64url, utf8 } from "./crypto.ts";

// PBKDF2-SHA256 at 100,000 iterations: the most Workers' WebCrypto allows, within its CPU budget.
// Stored as "pbkdf2-sha256$<iterations>$<salt>$<hash>", so parameters can change and old hashes upgrade.
export const PASSWORD_ITERATIONS = 100_000;
const SALT_BYTES = 16;
const HASH_BITS = 256;

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", utf8(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, HASH_BITS);
  return new Uint8Array(bits);
}

export async function hashPassword(password: string, iterations = PASSWORD_ITERATIONS): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, iterations);
  return `pbkdf2-sha256$${iterations}$${base64url(salt)}$${base64url(hash)}`;
}

interface PasswordCheck {
  ok: boolean;
  /** The stored hash uses weaker parameters than today's: store a fresh hash after this login. */
  needsRehash: boolean;
}

export async function verifyPassword(password: string, stored: string): Promise<PasswordCheck> {
  const [scheme, rounds, saltText, hashText] = stored.split("$");
  const iterations = Number(rounds);
  const salt = fromBase64url(saltText ?? "");
  const expected = fromBase64url(hashText ?? "");
  if (scheme !== "pbkdf2-sha256" || !Number.isInteger(iterations) || iterations < 1 || !salt || !expected) {
    return { ok: false, needsRehash: false };
  }
  const actual = await derive(password, salt, Math.min(iterations, PASSWORD_ITERATIONS));
  const ok = actual.byteLength === expected.byteLength && crypto.subtle.timingSafeEqual(actual, expected);
  return { ok, needsRehash: ok && iterations < PASSWORD_ITERATIONS };
}

// Verified against when the account does not exist, so a login takes as long either way.
let decoy: Promise<string> | undefined;
export const decoyHash = (): Promise<string> => {
  decoy ??= hashPassword(base64url(crypto.getRandomValues(new Uint8Array(16))));
  return decoy;
};
