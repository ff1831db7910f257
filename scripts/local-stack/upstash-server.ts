import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Redis, ReplyError } from "ioredis";
import {
  closeServer,
  createLocalServer,
  listenOnFreePort,
  RequestError,
  readBody,
  readJsonBody,
  sendJson,
} from "./http.ts";
import { redactUrl } from "./redact-url.ts";

// A local server speaking Upstash's Redis REST protocol over a real Redis:
//   POST /            ["SET","k","v"]            -> {"result": ...} | 400 {"error": "..."}
//   POST /pipeline    [["SET","k","v"],["GET","k"]] -> [{"result": ...} | {"error": "..."}, ...]
//   POST /multi-exec  same body, run in MULTI/EXEC  -> same shape
//   GET|POST /set/k/v  the command in the path (a POST body is appended as the last argument)
// Every request needs `Authorization: Bearer TOKEN`; `Upstash-Encoding: base64` base64-encodes every string.

export interface UpstashServer {
  url: string;
  token: string;
  stop(): Promise<void>;
}

export interface UpstashServerOptions {
  redisUrl: string;
  token: string;
  commandTimeoutMs?: number;
}

type Command = string[];
type Reply = null | number | string | Buffer | Error | Reply[];
type Entry = { result: unknown } | { error: string };

const MAX_BODY_BYTES = 10 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 2_000;

// Commands that would block, or change the state of, the one Redis connection all requests share.
const refusedCommands = new Set([
  "subscribe",
  "psubscribe",
  "ssubscribe",
  "unsubscribe",
  "punsubscribe",
  "sunsubscribe",
  "monitor",
  "quit",
  "reset",
  "select",
  "auth",
  "hello",
  "client",
  "multi",
  "exec",
  "discard",
  "watch",
  "unwatch",
  "blpop",
  "brpop",
  "brpoplpush",
  "blmove",
  "blmpop",
  "bzpopmin",
  "bzpopmax",
  "bzmpop",
  "wait",
  "waitaof",
]);

/** Connects to Redis (rejecting within seconds when it is unreachable), then serves the REST API on a free port. */
export async function startUpstashServer(options: UpstashServerOptions): Promise<UpstashServer> {
  const redis = await connectRedis(options.redisUrl, options.commandTimeoutMs ?? 5_000);
  const server = createLocalServer((request, response) => {
    void handle(redis, options.token, request, response);
  });
  const port = await listenOnFreePort(server).catch((error) => {
    redis.disconnect();
    throw error;
  });
  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    token: options.token,
    stop() {
      stopping ??= closeServer(server).then(() => redis.disconnect());
      return stopping;
    },
  };
}

async function connectRedis(redisUrl: string, commandTimeoutMs: number): Promise<Redis> {
  let lastError: Error | undefined;
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: commandTimeoutMs,
    // Fail requests at once while Redis is away instead of queueing them; reconnect in the background.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  redis.on("error", (error: Error) => {
    lastError = error;
  });
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    const reason = lastError?.message ?? (error as Error).message;
    throw new Error(`Redis not reachable at ${redactUrl(redisUrl)} (${reason})`, { cause: error });
  }
}

async function handle(redis: Redis, token: string, request: IncomingMessage, response: ServerResponse) {
  if (!isAuthorized(request, token)) return sendJson(response, 401, { error: "Unauthorized" });
  const encode = request.headers["upstash-encoding"] === "base64" ? encodeBase64 : encodeText;
  try {
    const { pathname } = new URL(request.url ?? "/", "http://localhost");
    if (request.method === "POST" && pathname === "/") {
      const entry = await runOne(redis, parseCommand(await readJsonBody(request, MAX_BODY_BYTES)), encode);
      return sendJson(response, "error" in entry ? 400 : 200, entry);
    }
    if (request.method === "POST" && (pathname === "/pipeline" || pathname === "/multi-exec")) {
      const commands = parseCommands(await readJsonBody(request, MAX_BODY_BYTES));
      const run = pathname === "/pipeline" ? runPipeline : runTransaction;
      return sendJson(response, 200, await run(redis, commands, encode));
    }
    if (request.method === "GET" || request.method === "POST") {
      const entry = await runOne(redis, await commandFromPath(pathname, request), encode);
      return sendJson(response, "error" in entry ? 400 : 200, entry);
    }
    sendJson(response, 405, { error: "use GET or POST" });
  } catch (error) {
    if (error instanceof RequestError) return sendJson(response, error.status, { error: error.message });
    if (error instanceof ReplyError) return sendJson(response, 400, { error: (error as Error).message });
    sendJson(response, 503, { error: `local Redis unavailable: ${(error as Error).message}` });
  }
}

async function runOne(redis: Redis, command: Command, encode: Encoder): Promise<Entry> {
  const [name, ...args] = command as [string, ...string[]];
  try {
    return { result: encode((await redis.callBuffer(name, ...args)) as Reply) };
  } catch (error) {
    if (error instanceof ReplyError) return { error: (error as Error).message };
    throw error;
  }
}

async function runPipeline(redis: Redis, commands: Command[], encode: Encoder): Promise<Entry[]> {
  const pipeline = redis.pipeline();
  for (const [name, ...args] of commands) pipeline.callBuffer(name!, ...args);
  return toEntries(await pipeline.exec(), encode);
}

async function runTransaction(redis: Redis, commands: Command[], encode: Encoder): Promise<Entry[]> {
  const transaction = redis.multi();
  for (const [name, ...args] of commands) transaction.callBuffer(name!, ...args);
  // A command Redis refuses while queueing aborts the whole transaction (EXECABORT): a ReplyError, so 400.
  return toEntries(await transaction.exec(), encode);
}

function toEntries(results: [Error | null, unknown][] | null, encode: Encoder): Entry[] {
  if (!results) throw new Error("transaction returned no results");
  return results.map(([error, result]) => {
    if (!error) return { result: encode(result as Reply) };
    if (error instanceof ReplyError) return { error: (error as Error).message };
    throw error;
  });
}

type Encoder = (reply: Reply) => unknown;

const encodeText: Encoder = (reply) => encodeWith(reply, (bytes) => bytes.toString("utf8"));
const encodeBase64: Encoder = (reply) => encodeWith(reply, (bytes) => bytes.toString("base64"));

/** Integers and nil as JSON, strings through `text`, arrays recursively (as Upstash renders RESP). */
function encodeWith(reply: Reply, text: (bytes: Buffer) => string): unknown {
  if (reply === null || typeof reply === "number") return reply;
  if (Array.isArray(reply)) return reply.map((item) => encodeWith(item, text));
  if (reply instanceof Error) return text(Buffer.from(reply.message));
  return text(typeof reply === "string" ? Buffer.from(reply) : reply);
}

function parseCommands(body: unknown): Command[] {
  if (!Array.isArray(body) || body.length === 0) {
    throw new RequestError(400, "ERR expected a non-empty array of commands");
  }
  return body.map(parseCommand);
}

function parseCommand(body: unknown): Command {
  if (!Array.isArray(body) || body.length === 0) {
    throw new RequestError(400, 'ERR expected a command: ["SET","key","value"]');
  }
  const command = body.map((arg) => {
    if (typeof arg === "string" || typeof arg === "number" || typeof arg === "boolean") return String(arg);
    throw new RequestError(400, "ERR command arguments must be strings or numbers");
  });
  return checkCommand(command);
}

async function commandFromPath(pathname: string, request: IncomingMessage): Promise<Command> {
  let command: Command;
  try {
    command = pathname.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new RequestError(400, "ERR the path is not valid percent-encoding");
  }
  if (request.method === "POST") {
    const body = await readBody(request, MAX_BODY_BYTES);
    if (body.length > 0) command.push(body.toString("utf8"));
  }
  if (command.length === 0) throw new RequestError(400, "ERR expected a command in the path: /set/key/value");
  return checkCommand(command);
}

/** Refuses commands this server cannot run safely; returns the command with its name in upper case. */
function checkCommand(command: Command): Command {
  const name = command[0]!.toLowerCase();
  const blockingRead = (name === "xread" || name === "xreadgroup") && command.some((a) => a.toLowerCase() === "block");
  if (refusedCommands.has(name) || blockingRead) {
    throw new RequestError(400, `ERR ${name.toUpperCase()} is not supported by the local Upstash server`);
  }
  // Upper case on purpose: ioredis reshapes some replies by lower-case command name (HGETALL into an object).
  return [name.toUpperCase(), ...command.slice(1)];
}

function isAuthorized(request: IncomingMessage, token: string): boolean {
  const given = Buffer.from(request.headers.authorization ?? "");
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
