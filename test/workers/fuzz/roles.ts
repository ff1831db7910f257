import type { DocumentedOperation } from "./openapi.ts";

// Who may call each operation. The document says whether an operation needs credentials (`security`) but not
// which role, so the role is written here, one row per operation, and checked against the document:
// an operation without a row, a row without an operation, or a row that disagrees with `security` fails.

/**
 * public: anyone. user, viewer, admin: a signed-in caller with at least this role (access token or API key).
 * operator: OPERATOR_TOKEN, or a signed-in viewer or admin. bootstrap: ADMIN_BOOTSTRAP_TOKEN only.
 * socket: a signed-in user through a ticket, a subprotocol or the Authorization header (no `security`,
 * because browsers cannot set headers on a WebSocket).
 */
export type Requirement = "public" | "user" | "viewer" | "admin" | "operator" | "bootstrap" | "socket";

export const REQUIRED_ROLE: Record<string, Requirement> = {
  "GET /health": "public",
  "GET /ready": "public",
  "GET /health/detailed": "operator",
  "GET /metrics": "operator",
  "POST /api/auth/register": "public",
  "POST /api/auth/login": "public",
  "POST /api/auth/refresh": "public",
  "POST /api/auth/logout": "user",
  "GET /api/auth/me": "user",
  "GET /api/auth/sessions": "user",
  "DELETE /api/auth/sessions/{id}": "user",
  "POST /api/auth/password-reset": "public",
  "POST /api/users/me/change-password": "user",
  "POST /api/users/me/api-keys": "user",
  "GET /api/users/me/api-keys": "user",
  "DELETE /api/users/me/api-keys/{id}": "user",
  "POST /api/admin/bootstrap": "bootstrap",
  "GET /api/admin/users": "viewer",
  "GET /api/admin/users/{id}": "viewer",
  "DELETE /api/admin/users/{id}": "admin",
  "PATCH /api/admin/users/{id}/role": "admin",
  "POST /api/admin/users/{id}/password-reset": "admin",
  "POST /api/admin/users/{id}/{action}": "admin",
  "GET /api/admin/audit": "viewer",
  "GET /api/admin/audit/export": "viewer",
  "GET /api/admin/audit/verify": "viewer",
  "GET /api/admin/slos": "viewer",
  "GET /api/admin/alerts": "viewer",
  "POST /api/admin/alerts/{id}/acknowledge": "admin",
  "POST /api/admin/alerts/silences": "admin",
  "GET /api/admin/alerts/silences": "viewer",
  "DELETE /api/admin/alerts/silences/{id}": "admin",
  "GET /api/admin/costs": "viewer",
  "POST /api/admin/chaos/evict": "admin",
  "POST /api/admin/kb/documents": "admin",
  "GET /api/admin/kb/documents": "viewer",
  "GET /api/admin/kb/documents/{id}": "viewer",
  "DELETE /api/admin/kb/documents/{id}": "admin",
  "GET /api/admin/kb/documents/{id}/chunks": "viewer",
  "GET /api/admin/kb/documents/{id}/events": "viewer",
  "POST /api/admin/kb/documents/{id}/retry": "admin",
  "POST /api/admin/kb/import": "admin",
  "GET /api/admin/kb/import/{id}": "viewer",
  "POST /api/admin/kb/documents/{id}/reindex": "admin",
  "POST /api/admin/kb/index/rebuild": "admin",
  "GET /api/admin/kb/stats": "viewer",
  "POST /api/kb/search": "user",
  "POST /api/rag/query": "user",
  "POST /api/conversations": "user",
  "GET /api/conversations": "user",
  "GET /api/conversations/{id}": "user",
  "PATCH /api/conversations/{id}": "user",
  "DELETE /api/conversations/{id}": "user",
  "GET /api/conversations/{id}/export": "user",
  "GET /api/conversations/{id}/messages": "user",
  "POST /api/conversations/{id}/messages": "user",
  "PATCH /api/conversations/{id}/messages/{message_id}": "user",
  "POST /api/conversations/{id}/messages/{message_id}/regenerate": "user",
  "GET /api/conversations/{id}/messages/{message_id}/versions": "user",
  "POST /api/conversations/{id}/messages/{message_id}/feedback": "user",
  "DELETE /api/conversations/{id}/messages/{message_id}/feedback": "user",
  "GET /api/users/me/usage": "user",
  "POST /api/realtime/tickets": "user",
  "GET /api/realtime/ws": "socket",
  "GET /api/voice/realtime": "socket",
  "GET /v1/realtime": "socket",
  "POST /api/voice/sessions": "user",
  "GET /api/voice/sessions/{id}": "user",
  "GET /api/voice/preferences": "user",
  "PUT /api/voice/preferences": "user",
  "POST /api/voice/realtime-session": "user",
  "POST /api/voice/transcribe": "user",
  "POST /api/voice/synthesize": "user",
  "POST /api/admin/flags/import": "admin",
  "GET /api/admin/flags/export": "viewer",
  "POST /api/admin/flags/playground": "viewer",
  "POST /api/admin/flags/overrides/cleanup": "admin",
  "GET /api/admin/flags/{key}/overrides": "viewer",
  "POST /api/admin/flags/{key}/overrides": "admin",
  "PUT /api/admin/flags/{key}/overrides/{userId}": "admin",
  "DELETE /api/admin/flags/{key}/overrides/{userId}": "admin",
  "GET /api/admin/flags/segments": "viewer",
  "POST /api/admin/flags/segments": "admin",
  "PUT /api/admin/flags/segments/{id}": "admin",
  "DELETE /api/admin/flags/segments/{id}": "admin",
  "GET /api/admin/flags": "viewer",
  "POST /api/admin/flags": "admin",
  "GET /api/admin/flags/{key}": "viewer",
  "PUT /api/admin/flags/{key}": "admin",
  "PATCH /api/admin/flags/{key}": "admin",
  "DELETE /api/admin/flags/{key}": "admin",
  "POST /api/admin/flags/{key}/toggle": "admin",
  "POST /api/admin/flags/{key}/archive": "admin",
  "PUT /api/admin/flags/{key}/strategies": "admin",
  "PUT /api/admin/flags/{key}/variants": "admin",
  "PUT /api/admin/flags/{key}/dependencies": "admin",
  "PUT /api/admin/flags/{key}/schedule": "admin",
  "GET /api/admin/flags/{key}/history": "viewer",
  "GET /api/admin/flags/{key}/metrics": "viewer",
  "POST /api/flags/evaluate": "user",
  "GET /api/client/features": "viewer",
  "GET /api/flags/stream": "user",
  "POST /ofrep/v1/evaluate/flags/{key}": "user",
  "POST /ofrep/v1/evaluate/flags": "user",
};

/** Every way the table and the document disagree (empty when they agree). */
export function tableMismatches(operations: DocumentedOperation[]): string[] {
  const problems: string[] = [];
  const documented = new Set(operations.map((op) => op.id));
  for (const id of Object.keys(REQUIRED_ROLE)) {
    if (!documented.has(id)) problems.push(`${id}: has a row but is not in /openapi.json`);
  }
  for (const op of operations) {
    const required = REQUIRED_ROLE[op.id];
    if (!required) {
      problems.push(`${op.id}: no row in REQUIRED_ROLE (test/workers/fuzz/roles.ts)`);
      continue;
    }
    const expected: Record<Requirement, string[]> = {
      public: [],
      socket: [],
      user: ["bearerAuth", "apiKey"],
      viewer: ["bearerAuth", "apiKey"],
      admin: ["bearerAuth", "apiKey"],
      operator: ["operatorToken", "bearerAuth", "apiKey"],
      bootstrap: ["bootstrapToken"],
    };
    const schemes = [...op.schemes].sort().join(",");
    if (schemes !== [...expected[required]].sort().join(",")) {
      problems.push(`${op.id}: the row says ${required} but security is [${op.schemes.join(", ")}]`);
    }
    if (required === "socket" && !op.declares(401)) problems.push(`${op.id}: a socket route must declare 401`);
  }
  return problems;
}

export type Caller = "anonymous" | "user" | "viewer" | "admin";
const RANK: Record<Caller, number> = { anonymous: 0, user: 1, viewer: 2, admin: 3 };

/** What the matrix says a caller gets: in (allowed), 401 (no valid credential) or 403 (signed in, role too low). */
export function verdict(required: Requirement, caller: Caller): "allowed" | 401 | 403 {
  if (required === "public") return "allowed";
  if (caller === "anonymous") return 401;
  switch (required) {
    case "bootstrap":
      return 401;
    case "operator":
      return RANK[caller] >= RANK.viewer ? "allowed" : 403;
    case "socket":
      return "allowed";
    default:
      return RANK[caller] >= RANK[required] ? "allowed" : 403;
  }
}
