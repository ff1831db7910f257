// The platform's HTTP API as the CLI calls it: one request with a timeout, its problem+json explained in words.
import { type CliIo, CommandFailed, type Json, UsageError } from "./command.ts";

export const TIMEOUT_MS = 30_000;
const DEFAULT_PORT = "8787";

/** The server did not answer (refused, unknown host, timeout): exit 1, told in one line. */
export class Unreachable extends CommandFailed {}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface Reply {
  status: number;
  /** A 2xx with a JSON (or empty) body. */
  ok: boolean;
  json: Json;
}

export interface Send {
  method: Method;
  path: string;
  token?: string;
  json?: unknown;
  form?: FormData;
  timeoutMs?: number;
}

/** `npm run dev`'s URL: on PORT, as it does. */
export function localUrl(io: CliIo): string {
  const port = io.env.PORT || DEFAULT_PORT;
  if (!/^\d{1,5}$/.test(port)) throw new UsageError(`PORT must be a port number (npm run dev's), not "${port}"`);
  return `http://127.0.0.1:${port}`;
}

/** The platform's base URL: --url, else VOICEASSIST_URL, else `npm run dev`'s. */
export function baseUrl(url: string | undefined, io: CliIo): string {
  const base = (url ?? (io.env.VOICEASSIST_URL || localUrl(io))).replace(/\/+$/, "");
  const protocol = URL.canParse(base) ? new URL(base).protocol : "";
  if (protocol !== "http:" && protocol !== "https:")
    throw new UsageError(`--url must be an http(s) URL, not "${base}"`);
  return base;
}

/** VOICEASSIST_TIMEOUT_SECONDS, when set: every call's timeout (a slow link, a test), else each call's own. */
export function timeoutOverride(io: CliIo): number | undefined {
  const value = io.env.VOICEASSIST_TIMEOUT_SECONDS;
  if (!value) return undefined;
  const seconds = Number(value);
  if (!(seconds > 0)) throw new UsageError(`VOICEASSIST_TIMEOUT_SECONDS must be a positive number, not "${value}"`);
  return seconds * 1000;
}

/** Why a fetch failed, in words: its cause (ECONNREFUSED, ENOTFOUND, ...) or the timeout. */
function failure(error: unknown, timeoutMs: number): string {
  const { name, message, cause } = error as Error & { cause?: Error & { code?: string } };
  if (name === "TimeoutError") return `no answer within ${timeoutMs / 1000} s`;
  const reason = cause ? cause.message || cause.code : undefined;
  return reason && reason !== message ? `${message} (${reason})` : message;
}

/** Starts a request; the response once its headers arrive. */
export async function open(base: string, send: Send, signal: AbortSignal, accept: string): Promise<Response> {
  const headers: Record<string, string> = { accept };
  if (send.token) headers.authorization = `Bearer ${send.token}`;
  if (send.json !== undefined) headers["content-type"] = "application/json";
  try {
    return await fetch(`${base}${send.path}`, {
      method: send.method,
      headers,
      body: send.form ?? (send.json === undefined ? undefined : JSON.stringify(send.json)),
      signal,
    });
  } catch (error) {
    throw new Unreachable(`Could not reach ${base}: ${failure(error, send.timeoutMs ?? TIMEOUT_MS)}`);
  }
}

/** One request with a timeout; a JSON answer read back, whatever its status. */
export async function request(base: string, send: Send): Promise<Reply> {
  const timeoutMs = send.timeoutMs ?? TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  const res = await open(base, send, signal, "application/json, application/problem+json");
  let text: string;
  try {
    text = await res.text();
  } catch (error) {
    throw new Unreachable(`Could not reach ${base}: ${failure(error, timeoutMs)}`);
  }
  return reply(res.status, text);
}

/** A status and body as a Reply: a body that is not a JSON object is kept as its detail. */
export function reply(status: number, text: string): Reply {
  try {
    const value: unknown = text ? JSON.parse(text) : {};
    const json = value && typeof value === "object" && !Array.isArray(value) ? (value as Json) : { detail: text };
    return { status, ok: status >= 200 && status < 300, json };
  } catch {
    // Not the platform answering (a proxy's error page, a wrong --url): shown as the detail.
    return { status, ok: false, json: { detail: text.slice(0, 200) } };
  }
}

/** Explains a problem+json answer in one line, with its per-field errors. */
export function describeProblem(status: number, body: Json): string {
  const errors = Array.isArray(body.errors)
    ? (body.errors as { field: string; message: string }[]).map((e) => `\n  ${e.field}: ${e.message}`).join("")
    : "";
  return `${status} ${String(body.code ?? "")}: ${String(body.detail ?? "request failed")}${errors}`;
}

/** Tells a failed answer on standard error: exit 1. */
export function failed(io: CliIo, res: Reply): number {
  io.err(describeProblem(res.status, res.json));
  return 1;
}
