// The webhook signature, on Web Crypto alone (no Worker bindings), so receivers and Node tools can verify it:
//   VoiceAssist-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

export const WEBHOOK_SIGNATURE_HEADER = "VoiceAssist-Signature";
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

/** The header value for a body sent at unix time t: `t=<t>,v1=<hex>`. */
export async function signatureHeader(secret: string, t: number, rawBody: string): Promise<string> {
  const key = await hmacKey(secret, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${t}.${rawBody}`));
  return `t=${t},v1=${toHex(new Uint8Array(mac))}`;
}

/**
 * True when `header` carries a v1 HMAC of `rawBody` under `secret` whose timestamp is within
 * toleranceSeconds of nowSeconds (either side). Compares in constant time (crypto.subtle.verify).
 */
export async function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  rawBody: string,
  nowSeconds: number,
  toleranceSeconds: number = DEFAULT_SIGNATURE_TOLERANCE_SECONDS,
): Promise<boolean> {
  if (!secret || !header) return false;
  let t: number | undefined;
  const signatures: Uint8Array[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === "t" && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (name === "v1" && /^[0-9a-f]{64}$/i.test(value)) signatures.push(fromHex(value));
  }
  if (t === undefined || signatures.length === 0) return false;
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const key = await hmacKey(secret, ["verify"]);
  const signed = encoder.encode(`${t}.${rawBody}`);
  for (const signature of signatures) {
    if (await crypto.subtle.verify("HMAC", key, signature, signed)) return true;
  }
  return false;
}

const encoder = new TextEncoder();

const hmacKey = (secret: string, usages: ("sign" | "verify")[]) =>
  crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, usages);

const toHex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
