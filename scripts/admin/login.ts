// `login` and `logout`: a session kept for the next commands.
import { type Command, options, readPassword, UsageError } from "./command.ts";
import { credentialsPath, forgetSession, loadSession, saveSession } from "./credentials.ts";
import { baseUrl, failed, request, timeoutOverride } from "./http.ts";
import { SessionEnded, signedIn, storedSession } from "./session.ts";

export const login: Command = {
  summary: "sign in; the next commands act as you until the session ends",
  usage:
    "login --email EMAIL [--url URL] < password\n" +
    "  The password is read from standard input or asked for (never an argument). The session's tokens are kept,\n" +
    "  per URL, in $XDG_CONFIG_HOME/voiceassist/credentials.json (~/.config/... by default; VOICEASSIST_CREDENTIALS\n" +
    "  names another file), readable by you alone; the access token is refreshed when it expires.\n" +
    "  VOICEASSIST_TOKEN, when set, still wins over it.",
  async run(args, io) {
    const { values } = options(args, { email: { type: "string" } });
    if (!values.email) throw new UsageError("login needs --email");
    const base = baseUrl(values.url, io);
    const password = await readPassword(io, `Password for ${values.email}: `);
    if (!password) {
      io.err("Pipe the password on standard input.");
      return 2;
    }
    const res = await request(base, {
      method: "POST",
      path: "/api/auth/login",
      json: { email: values.email, password },
      timeoutMs: timeoutOverride(io),
    });
    if (!res.ok) return failed(io, res);
    const session = storedSession(res.json, values.email);
    await saveSession(io, base, session);
    io.out(`Signed in to ${base} as ${session.email} (${session.role}).`);
    io.out(`The next commands use this session until it ends; it is kept in ${credentialsPath(io)}.`);
    if (io.env.VOICEASSIST_TOKEN?.trim()) io.err("VOICEASSIST_TOKEN is set: commands use it, not this session.");
    return 0;
  },
};

export const logout: Command = {
  summary: "end the session login kept for this URL",
  usage: "logout [--url URL]",
  async run(args, io) {
    const { values } = options(args, {});
    const base = baseUrl(values.url, io);
    if (!(await loadSession(io, base))) {
      io.out(`Not signed in to ${base}.`);
      return 0;
    }
    try {
      // The kept session, not VOICEASSIST_TOKEN's.
      const api = await signedIn(values.url, { ...io, env: { ...io.env, VOICEASSIST_TOKEN: "" } });
      const res = await api?.call("POST", "/api/auth/logout");
      if (res && !res.ok && res.status !== 401) return failed(io, res);
    } catch (error) {
      // A session that already ended is as good as signed out.
      if (!(error instanceof SessionEnded)) throw error;
    }
    await forgetSession(io, base);
    io.out(`Signed out of ${base}.`);
    return 0;
  },
};
