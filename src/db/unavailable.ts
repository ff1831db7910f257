// Whether an error means Postgres could not be reached (not that a query was wrong): such a request is a
// 503 DATABASE_UNAVAILABLE with Retry-After, not a 500. Found by the chaos experiment database-failure.
import { ApiError, toApiError } from "../errors.ts";
import { postgresErrorCode } from "./client.ts";

// SQLSTATE class 08 (connection exception) and the server shutting down or starting up.
const UNAVAILABLE_STATES = /^(08...|57P01|57P02|57P03)$/;
// What the Neon drivers and the pg client say when the connection fails, closes or times out (a query that
// got no answer within query_timeout: the connection went silent, chaos queue-redelivery).
const UNAVAILABLE_MESSAGES =
  /Error connecting to database|Connection terminated|connection timeout|timeout exceeded when trying to connect|WebSocket (connection|closed|was closed)|encountered a connection error and is not queryable|Query read timeout|Postgres (could not be reached|did not answer)/i;

export function isDatabaseUnavailable(error: unknown): boolean {
  const code = postgresErrorCode(error);
  if (code && UNAVAILABLE_STATES.test(code)) return true;
  const seen = new Set<unknown>();
  for (let e = error; e && typeof e === "object" && !seen.has(e); ) {
    seen.add(e);
    if (e instanceof ApiError && e.code !== "UPSTREAM_UNAVAILABLE" && e.code !== "UPSTREAM_TIMEOUT") return false;
    if (UNAVAILABLE_MESSAGES.test(String((e as { message?: unknown }).message ?? ""))) return true;
    const next = e as { cause?: unknown; sourceError?: unknown };
    e = next.sourceError ?? next.cause;
  }
  return false;
}

export const databaseUnavailable = (cause: unknown) =>
  new ApiError("DATABASE_UNAVAILABLE", "The database is unavailable; try again shortly.", {
    headers: { "Retry-After": "5" },
    cause,
  });

/** What a thrown error answers as anywhere (HTTP, SSE, sockets): its ApiError, 503 when Postgres is unreachable, else 500. */
export const apiErrorOf = (error: unknown): ApiError =>
  isDatabaseUnavailable(error) ? databaseUnavailable(error) : toApiError(error);
