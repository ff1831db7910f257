// Who the commands act as: VOICEASSIST_TOKEN when set, else the session `login` kept for this URL,
// refreshed with its refresh token when its access token has expired (or the server says it has).
import { type CliIo, CommandFailed, type Json, UsageError } from "./command.ts";
import { forgetSession, loadSession, type StoredSession, saveSession } from "./credentials.ts";
import { baseUrl, describeProblem, localUrl, type Reply, request, type Send, timeoutOverride } from "./http.ts";
import { openEvents } from "./sse.ts";

// Refresh a little early, so the token does not expire between the check and the server's.
const EXPIRY_MARGIN_MS = 30_000;

/** The kept session ended (refresh refused or expired); it has been forgotten. */
export class SessionEnded extends CommandFailed {}

export interface Api {
  base: string;
  /** A JSON request as the signed-in user. */
  call(method: Send["method"], path: string, json?: unknown): Promise<Reply>;
  send(send: Omit<Send, "token">): Promise<Reply>;
  events(send: Omit<Send, "token">): ReturnType<typeof openEvents>;
}

/** The tokens of a login or refresh answer, with their expiry times, as `login` keeps them. */
export function storedSession(tokens: Json, email: string): StoredSession {
  const now = Date.now();
  const user = (tokens.user ?? {}) as Json;
  return {
    email: String(user.email ?? email),
    role: String(user.role ?? ""),
    access_token: String(tokens.access_token),
    access_expires_at: new Date(now + Number(tokens.expires_in) * 1000).toISOString(),
    refresh_token: String(tokens.refresh_token),
    refresh_expires_at: new Date(now + Number(tokens.refresh_expires_in) * 1000).toISOString(),
  };
}

/** How to sign in to `base`, as a command line. */
export const loginHint = (base: string, io: CliIo) =>
  `npm run admin -- login --email EMAIL${base === localUrl(io) ? "" : ` --url ${base}`}`;

/** The API as the signed-in user; undefined (told why) when nobody is. */
export async function signedIn(url: string | undefined, io: CliIo): Promise<Api | undefined> {
  const base = baseUrl(url, io);
  const timeoutMs = timeoutOverride(io);
  const token = io.env.VOICEASSIST_TOKEN?.trim();
  if (token) {
    if (/\s/.test(token)) throw new UsageError("VOICEASSIST_TOKEN must be one token, without spaces");
    return api(base, async () => token, false, timeoutMs);
  }
  let session = await loadSession(io, base);
  if (!session) {
    io.err(
      `Not signed in to ${base}. Sign in with: ${loginHint(base, io)}\n` +
        "(or set VOICEASSIST_TOKEN to an access token or an API key va_k_...).",
    );
    return undefined;
  }
  const email = session.email;
  const ended = async (why: string) => {
    await forgetSession(io, base);
    return new SessionEnded(`${why}\nSign in again: ${loginHint(base, io)}`);
  };
  const refreshing = async (expired: boolean) => {
    const current = session as StoredSession;
    if (!expired && Date.parse(current.access_expires_at) - Date.now() > EXPIRY_MARGIN_MS) {
      return current.access_token;
    }
    if (Date.parse(current.refresh_expires_at) <= Date.now()) throw await ended(`Your session on ${base} has ended.`);
    const res = await request(base, {
      method: "POST",
      path: "/api/auth/refresh",
      json: { refresh_token: current.refresh_token },
      timeoutMs,
    });
    if (res.status === 401) throw await ended(describeProblem(res.status, res.json));
    if (!res.ok) throw new CommandFailed(describeProblem(res.status, res.json));
    session = storedSession(res.json, email);
    await saveSession(io, base, session);
    return session.access_token;
  };
  return api(base, refreshing, true, timeoutMs);
}

/**
 * Calls with the token `tokenFor` gives; when `retry`, a 401 gets one more try with a refreshed token.
 * `timeoutMs`, when given, replaces each call's own timeout.
 */
function api(
  base: string,
  tokenFor: (expired: boolean) => Promise<string>,
  retry: boolean,
  timeoutMs: number | undefined,
): Api {
  const timed = (spec: Omit<Send, "token">) => ({ ...spec, timeoutMs: timeoutMs ?? spec.timeoutMs });
  const send = async (spec: Omit<Send, "token">) => {
    const first = await request(base, { ...timed(spec), token: await tokenFor(false) });
    return retry && first.status === 401 ? request(base, { ...timed(spec), token: await tokenFor(true) }) : first;
  };
  return {
    base,
    send,
    call: (method, path, json) => send({ method, path, json }),
    async events(spec) {
      const first = await openEvents(base, { ...timed(spec), token: await tokenFor(false) });
      if (!retry || first.reply?.status !== 401) return first;
      return openEvents(base, { ...timed(spec), token: await tokenFor(true) });
    },
  };
}
