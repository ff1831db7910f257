// The admin tool: `npm run admin -- <command> [options]`. Commands call the platform's HTTP API,
// so they work the same against `npm run dev` and a deployment (--url).
import { ask } from "./ask.ts";
import { bootstrap } from "./bootstrap.ts";
import { type CliIo, type Command, CommandFailed, type Group, UsageError } from "./command.ts";
import { flags } from "./flags.ts";
import { kb } from "./kb.ts";
import { login, logout } from "./login.ts";
import { users } from "./users.ts";

export type { CliIo } from "./command.ts";

const commands: Record<string, Command | Group> = { bootstrap, login, logout, users, kb, ask, flags };

const NOTE =
  "Commands act as the user `login` signed in (kept per URL in ~/.config/voiceassist/credentials.json, or the\n" +
  "file VOICEASSIST_CREDENTIALS names), or with VOICEASSIST_TOKEN (an access token or API key va_k_...) when set.\n" +
  "They call --url, else VOICEASSIST_URL, else npm run dev's http://127.0.0.1:$PORT (8787 when PORT is unset),\n" +
  "each call ending after 30 s without an answer (VOICEASSIST_TIMEOUT_SECONDS changes that).\n" +
  "Exit codes: 0 done, 1 the request failed (the server's reason is shown), 2 bad usage or not signed in.";

/** Runs a command of the table, or lists the table; `prefix` is the words before it ("flags "). */
async function dispatch(
  entries: Record<string, Command | Group>,
  prefix: string,
  argv: string[],
  io: CliIo,
  note: string,
): Promise<number> {
  const [name, ...rest] = argv;
  const named = name !== undefined && !["help", "--help", "-h"].includes(name);
  const entry = named && Object.hasOwn(entries, name) ? entries[name] : undefined;
  if (!entry) {
    const list = Object.entries(entries).map(([n, c]) => `  ${n.padEnd(12)} ${c.summary}`);
    (named ? io.err : io.out)(
      [
        named ? `Unknown command: ${prefix}${name}` : "",
        `usage: npm run admin -- ${prefix}<command> [options]`,
        ...list,
        note,
      ]
        .filter(Boolean)
        .join("\n"),
    );
    return named ? 2 : 0;
  }
  if ("commands" in entry) {
    return dispatch(entry.commands, `${prefix}${name} `, rest, io, [entry.note, NOTE].filter(Boolean).join("\n"));
  }
  const options = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (options.includes("--help") || options.includes("-h")) {
    io.out(`usage: npm run admin -- ${entry.usage}`);
    return 0;
  }
  try {
    return await entry.run(rest, io);
  } catch (error) {
    if (error instanceof CommandFailed) {
      io.err(error.message);
      return 1;
    }
    // node:util parseArgs refuses unknown options and missing values with these codes.
    const usage = error instanceof UsageError || /^ERR_PARSE_ARGS_/.test((error as { code?: string }).code ?? "");
    if (usage) {
      io.err(`${(error as Error).message}\nusage: npm run admin -- ${entry.usage}`);
      return 2;
    }
    // Anything else (an unreadable file, a credentials file that cannot be written) in one line too.
    io.err(String((error as Error).message ?? error));
    return 1;
  }
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  return dispatch(commands, "", argv, io, NOTE);
}
