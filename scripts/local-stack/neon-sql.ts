import type { IncomingMessage, ServerResponse } from "node:http";
import type { Client, Pool, PoolClient, QueryArrayConfig, QueryConfig, QueryResult } from "@neondatabase/serverless";
import { RequestError, readJsonBody, sendJson } from "./http.ts";
import { createLocalNeonPool } from "./neon-pool.ts";

// Neon's HTTP SQL endpoint (what `neon()` posts to), executed with the Neon Pool through our WebSocket proxy.
// Request: {query, params} or {queries: [{query, params}...]} (a batch runs in one transaction) with Neon-*
// headers. Response: results whose values are Postgres text (the driver always sends Neon-Raw-Text-Output and
// parses them by dataTypeID). Errors: 400 + Postgres error fields, which the driver raises as NeonDbError.

export interface NeonSqlOptions {
  /** "host:port" of the only Postgres that connection strings may name. */
  postgresAddress: string;
  /** "127.0.0.1:PORT" of the WebSocket proxy the pools connect through. */
  proxyHostPort: string;
  statementTimeoutMs: number;
}

interface SqlQuery {
  query: string;
  params: unknown[];
}

interface NeonResult {
  command: string;
  rowCount: number | null;
  fields: unknown[];
  rows: unknown[];
  rowAsArray: boolean;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;
const POOL_SIZE = 10;

// The names Neon's driver accepts for `isolationLevel`, as SQL.
const isolationLevels: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};

// The fields NeonDbError copies from an error response (see the driver's `hi` list).
const postgresErrorFields = [
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

// Every value stays the text Postgres sent; the driver does the parsing.
const rawText = { getTypeParser: () => (value: string) => value };

/** An error to report as Postgres would (with an SQLSTATE). */
class PostgresError extends Error {
  fields: Record<string, unknown>;
  /** True when the connection must not be reused (a timed-out query may still be running on it). */
  connectionBroken: boolean;
  constructor(message: string, fields: Record<string, unknown>, connectionBroken = false) {
    super(message);
    this.fields = fields;
    this.connectionBroken = connectionBroken;
  }
}

/** Runs one statement, turning what Postgres (or our timeout) reports into a PostgresError. */
async function query(client: PoolClient, config: QueryConfig | QueryArrayConfig): Promise<QueryResult | QueryResult[]> {
  try {
    return await client.query(config);
  } catch (error) {
    if (error instanceof Error && typeof (error as { code?: unknown }).code === "string" && "severity" in error) {
      // After a FATAL error the server ends the session: that connection must not go back to the pool.
      const fatal = error.severity === "FATAL" || error.severity === "PANIC";
      throw new PostgresError(error.message, error as unknown as Record<string, unknown>, fatal);
    }
    if (error instanceof Error && error.message === "Query read timeout") {
      const fields = { code: "57014", severity: "ERROR" };
      throw new PostgresError("canceling statement due to statement timeout", fields, true);
    }
    throw error;
  }
}

export function createNeonSqlHandler(options: NeonSqlOptions) {
  const pools = new Map<string, Pool>();
  const queryTimeoutMs = options.statementTimeoutMs + 1_000;

  function poolFor(connectionString: string): Pool {
    let pool = pools.get(connectionString);
    if (!pool) {
      pool = createLocalNeonPool(
        {
          connectionString,
          max: POOL_SIZE,
          idleTimeoutMillis: 30_000,
          // Server-side limit; query_timeout backs it up where it is not enforced (PGlite).
          statement_timeout: options.statementTimeoutMs,
          query_timeout: queryTimeoutMs,
        },
        options.proxyHostPort,
      );
      pools.set(connectionString, pool);
    }
    return pool;
  }

  function checkConnectionString(value: string | undefined): string {
    if (!value) throw new RequestError(400, "missing Neon-Connection-String header");
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new RequestError(400, "Neon-Connection-String is not a valid URL");
    }
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
      throw new RequestError(400, "Neon-Connection-String must be a postgres:// URL");
    }
    const address = `${url.hostname}:${url.port || "5432"}`;
    if (address !== options.postgresAddress) {
      throw new RequestError(400, `this local endpoint only serves ${options.postgresAddress}, not ${address}`);
    }
    return value;
  }

  async function run(client: PoolClient, { query: text, params }: SqlQuery, arrayMode: boolean): Promise<NeonResult> {
    const result = await query(client, { text, values: params, rowMode: "array", types: rawText });
    // pg sends a query without parameters over the simple protocol, which allows several statements;
    // Neon uses the extended protocol and refuses them, so refuse them too (they have run by now).
    if (Array.isArray(result)) {
      throw new PostgresError("cannot insert multiple commands into a prepared statement", {
        code: "42601",
        severity: "ERROR",
      });
    }
    const names = result.fields.map((field) => field.name);
    const rows = result.rows as unknown[][];
    return {
      command: result.command,
      rowCount: result.rowCount,
      fields: result.fields,
      rows: arrayMode ? rows : rows.map((row) => Object.fromEntries(names.map((name, i) => [name, row[i]]))),
      rowAsArray: arrayMode,
    };
  }

  async function withClient<T>(
    connectionString: string,
    gone: AbortSignal,
    work: (client: PoolClient) => Promise<T>,
  ): Promise<T> {
    // A caller that has already gone costs nothing, and a connection it waited for goes back unused: after an
    // outage (slo-outage's SIGSTOP) hundreds of abandoned requests arrive at once, and ending a connection for
    // each one starved the pool of new ones for good.
    if (gone.aborted) throw new RequestError(499, "the caller has gone");
    const client = await poolFor(connectionString).connect();
    if (gone.aborted) {
      client.release();
      throw new RequestError(499, "the caller has gone");
    }
    // The caller gave up (the Worker's fetch timed out while its statement waited for PGlite): end the
    // connection, so the statement never runs later for nobody (an INSERT the Worker reported as failed would
    // still commit, and its retry find a row that nothing else follows up), and an open batch rolls back.
    // (The pool's clients are Clients: PoolClient's type just leaves end() out.)
    const abandon = () => void (client as PoolClient & Pick<Client, "end">).end().catch(() => {});
    gone.addEventListener("abort", abandon, { once: true });
    let broken: Error | undefined;
    try {
      return await work(client);
    } catch (error) {
      // After a timeout or a connection failure the connection state is unknown: drop it.
      if (!(error instanceof PostgresError) || error.connectionBroken) broken = error as Error;
      throw error;
    } finally {
      gone.removeEventListener("abort", abandon);
      client.release(broken);
    }
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const caller = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) caller.abort();
    });
    try {
      const connectionString = checkConnectionString(header(request, "neon-connection-string"));
      const arrayMode = header(request, "neon-array-mode") === "true";
      const body = await readJsonBody(request, MAX_BODY_BYTES);
      if (isBatch(body)) {
        const begin = beginStatement(request);
        const queries = body.queries.map(parseQuery);
        const results = await withClient(connectionString, caller.signal, async (client) => {
          await query(client, { text: begin });
          try {
            const batchResults: NeonResult[] = [];
            for (const batchQuery of queries) batchResults.push(await run(client, batchQuery, arrayMode));
            await query(client, { text: "COMMIT" });
            return batchResults;
          } catch (error) {
            if (error instanceof PostgresError && !error.connectionBroken) await query(client, { text: "ROLLBACK" });
            throw error;
          }
        });
        sendJson(response, 200, { results });
      } else {
        const single = parseQuery(body);
        const result = await withClient(connectionString, caller.signal, (client) => run(client, single, arrayMode));
        sendJson(response, 200, result);
      }
    } catch (error) {
      sendError(response, error);
    }
  }

  async function close(): Promise<void> {
    const ending = [...pools.values()].map((pool) => pool.end());
    pools.clear();
    await Promise.allSettled(ending);
  }

  return { handle, close };
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isBatch(body: unknown): body is { queries: unknown[] } {
  if (typeof body !== "object" || body === null || !("queries" in body)) return false;
  if (!Array.isArray(body.queries)) throw new RequestError(400, "`queries` must be an array");
  return true;
}

function parseQuery(value: unknown): SqlQuery {
  if (typeof value !== "object" || value === null) throw new RequestError(400, "expected {query, params}");
  const { query, params = [] } = value as { query?: unknown; params?: unknown };
  if (typeof query !== "string") throw new RequestError(400, "`query` must be a string");
  if (!Array.isArray(params)) throw new RequestError(400, "`params` must be an array");
  return { query, params };
}

function beginStatement(request: IncomingMessage): string {
  const modes: string[] = [];
  const isolation = header(request, "neon-batch-isolation-level");
  if (isolation !== undefined) {
    const level = isolationLevels[isolation];
    if (!level) throw new RequestError(400, `unknown Neon-Batch-Isolation-Level: ${isolation}`);
    modes.push(`ISOLATION LEVEL ${level}`);
  }
  const readOnly = booleanHeader(request, "neon-batch-read-only");
  if (readOnly !== undefined) modes.push(readOnly ? "READ ONLY" : "READ WRITE");
  const deferrable = booleanHeader(request, "neon-batch-deferrable");
  if (deferrable !== undefined) modes.push(deferrable ? "DEFERRABLE" : "NOT DEFERRABLE");
  return ["BEGIN", modes.join(", ")].join(" ").trim();
}

function booleanHeader(request: IncomingMessage, name: string): boolean | undefined {
  const value = header(request, name);
  if (value === undefined) return undefined;
  if (value !== "true" && value !== "false") throw new RequestError(400, `${name} must be true or false`);
  return value === "true";
}

function sendError(response: ServerResponse, error: unknown): void {
  if (error instanceof PostgresError) {
    const fields = Object.fromEntries(postgresErrorFields.map((name) => [name, error.fields[name]]));
    sendJson(response, 400, { message: error.message, ...fields });
  } else if (error instanceof RequestError) {
    sendJson(response, error.status, { message: error.message });
  } else {
    // Postgres unreachable, connection dropped, pool timeout: not the query's fault.
    sendJson(response, 502, { message: `local Postgres unavailable: ${(error as Error).message}` });
  }
}
