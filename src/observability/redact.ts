// Secrets and PHI-like fields never reach logs or Sentry.

const SENSITIVE_KEY =
  /pass(word|wd)?|secret|token|authorization|cookie|api[-_]?key|e-?mail|phone|ssn|social[-_]?security|dob|date[-_]?of[-_]?birth|birth[-_]?date|mrn|medical[-_]?record/i;
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
// drizzle's error text quotes the statement and every parameter (hashes, user text): nothing after it leaves.
const FAILED_QUERY = /Failed query:[\s\S]*/g;

export const REDACTED = "[REDACTED]";

const isSensitiveKey = (key: string): boolean => SENSITIVE_KEY.test(key);

/** Masks e-mail addresses, credentials and failed-query parameters that appear inside free text. */
export const redactText = (text: string): string =>
  text.replace(FAILED_QUERY, `Failed query: ${REDACTED}`).replace(EMAIL, REDACTED).replace(BEARER, `$1 ${REDACTED}`);

/** A deep copy with every sensitive field masked; cycles and depth are bounded. */
export function redact<T>(value: T, depth = 0, seen = new WeakSet<object>()): T {
  if (typeof value === "string") return redactText(value) as T;
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value) || depth > 8) return "[Truncated]" as T;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = isSensitiveKey(key) && v !== null && v !== undefined ? REDACTED : redact(v, depth + 1, seen);
  }
  return out as T;
}
