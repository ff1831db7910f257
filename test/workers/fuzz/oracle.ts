import type { DocumentedOperation } from "./openapi.ts";
import type { RequestShape } from "./requests.ts";
import type { Caller, Requirement } from "./roles.ts";
import { verdict } from "./roles.ts";

// What every response must satisfy, whatever was sent. Returns the broken rules (empty when none).

export interface Observed {
  status: number;
  contentType: string;
  /** The body text; undefined for a stream or socket the fuzzer did not read. */
  text?: string;
  code?: string;
}

/** Stack frames, driver and SQL errors: internals that must never reach a client. */
const LEAKS: [string, RegExp][] = [
  ["a stack trace", /\n\s+at [\w$.<>[\] ]+ \(|\bat [\w$.]+ \([\w./:-]+:\d+:\d+\)/],
  ["a drizzle query", /Failed query/i],
  [
    "a Postgres error",
    /syntax error at or near|violates (?:unique|foreign key|not-null|check) constraint|relation "\w+"|invalid input syntax for|column "\w+" (?:of|does not)|duplicate key value|PostgresError|NeonDbError/i,
  ],
  ["a JavaScript error name", /\b(?:TypeError|ReferenceError|RangeError|SyntaxError): /],
];
const SQL_TEXT = /\b(?:select\s+[\w*,\s"]+\s+from|insert\s+into\s+"?\w+|update\s+"?\w+"?\s+set|delete\s+from\s+"?\w+)/i;

/** Refusals the global guards and per-route body checks give before authentication runs. */
const PRE_AUTH: Record<number, string[]> = {
  413: ["PAYLOAD_TOO_LARGE"],
  415: ["UNSUPPORTED_MEDIA_TYPE"],
};

/** Operations that answer 401 or 403 to a caller the matrix lets in, and why. */
const OWN_REFUSALS: Record<string, number[]> = {
  "POST /api/auth/login": [401, 403], // wrong email or password; a deactivated account
  "POST /api/auth/refresh": [401], // an unknown, used or expired refresh token
  "POST /api/users/me/change-password": [401], // the current password is wrong
  "POST /api/users/me/api-keys": [403], // a key may not carry a role above its owner's
  "GET /api/realtime/ws": [401], // an unknown, used or expired ticket
  "GET /api/voice/realtime": [401], // the same, or a ticket without its session_id
  "GET /v1/realtime": [401],
};

export function violations(
  op: DocumentedOperation,
  required: Requirement,
  caller: Caller,
  request: RequestShape,
  res: Observed,
): string[] {
  const found: string[] = [];
  if (res.status >= 500) found.push(`status ${res.status}`);
  if (res.status >= 400 && !isOwnProtocolError(op, res) && res.contentType !== "application/problem+json") {
    found.push(`error status ${res.status} with content-type "${res.contentType}", not application/problem+json`);
  }
  if (res.text !== undefined) {
    for (const [what, pattern] of LEAKS) if (pattern.test(res.text)) found.push(`the body carries ${what}`);
    const sql = res.status >= 400 ? SQL_TEXT.exec(res.text)?.[0] : undefined;
    if (sql && !sentText(request).toLowerCase().includes(sql.toLowerCase()))
      found.push(`the body carries SQL ("${sql}")`);
  }
  const authz = authorizationProblem(op, required, caller, request, res);
  if (authz) found.push(authz);
  return found;
}

// OFREP answers its own errors in its protocol (application/json with errorCode), as its spec requires.
const isOwnProtocolError = (op: DocumentedOperation, res: Observed) =>
  op.path.startsWith("/ofrep/") && res.contentType === "application/json" && res.status < 500;

const sentText = (request: RequestShape) =>
  decodeURIComponentSafely(request.url) +
  (request.body === undefined
    ? ""
    : "text" in request.body
      ? request.body.text
      : request.body.form.map((f) => ("file" in f ? f.file + f.content : f.value)).join(""));

function decodeURIComponentSafely(text: string) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function authorizationProblem(
  op: DocumentedOperation,
  required: Requirement,
  caller: Caller,
  request: RequestShape,
  res: Observed,
): string | undefined {
  const expected = verdict(required, caller);
  const preAuth =
    PRE_AUTH[res.status]?.includes(res.code ?? "") ||
    (request.unsafe && res.status === 422 && res.code === "VALIDATION_FAILED") ||
    (request.unsafe && res.status === 400 && op.path.startsWith("/ofrep/"));
  if (expected === "allowed") {
    // A caller the matrix lets in gets a 401 or 403 only where the operation refuses it for a reason of its own.
    if ((res.status === 401 || res.status === 403) && !OWN_REFUSALS[op.id]?.includes(res.status)) {
      return `${caller} may call ${op.id} but got ${res.status} ${res.code ?? ""}`;
    }
    return undefined;
  }
  if (res.status === expected || preAuth) return undefined;
  // A broken path parameter may leave the route: no route (404, 405) is a refusal too, anything else is not.
  if (request.pathMutated && (res.status === 404 || res.status === 405 || res.status === 401 || res.status === 403)) {
    return undefined;
  }
  // A socket route reads its credential from the query (a ticket), so it checks the query and the upgrade first.
  if (required === "socket" && (res.status === 400 || (res.status === 422 && res.code === "VALIDATION_FAILED"))) {
    return undefined;
  }
  return `${caller} must get ${expected} from ${op.id} but got ${res.status} ${res.code ?? ""}`;
}
