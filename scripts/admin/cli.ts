// The admin tool: `npm run admin -- <command> [options]`. Commands call the platform's HTTP API,
// so they work the same against `npm run dev` and a deployment (--url).
import { parseArgs } from "node:util";

export interface CliIo {
  env: NodeJS.ProcessEnv;
  readStdin(): Promise<string>;
  out(line: string): void;
  err(line: string): void;
}

interface Command {
  summary: string;
  usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}

const DEFAULT_URL = "http://127.0.0.1:8787";
const TIMEOUT_MS = 30_000;

async function post(url: string, token: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { detail: text.slice(0, 200) };
  }
  return { status: res.status, json };
}

/** Explains a problem+json answer in one line, with its per-field errors. */
const describeProblem = (status: number, body: Record<string, unknown>) => {
  const errors = Array.isArray(body.errors)
    ? (body.errors as { field: string; message: string }[]).map((e) => `\n  ${e.field}: ${e.message}`).join("")
    : "";
  return `${status} ${String(body.code ?? "")}: ${String(body.detail ?? "request failed")}${errors}`;
};

const commands: Record<string, Command> = {
  bootstrap: {
    summary: "create the first admin (only while no admin exists)",
    usage:
      "bootstrap --email EMAIL --name FULL_NAME [--url URL] < password\n" +
      "  The password is read from standard input (never an argument); the token from ADMIN_BOOTSTRAP_TOKEN.",
    async run(args, io) {
      const { values } = parseArgs({
        args,
        options: { email: { type: "string" }, name: { type: "string" }, url: { type: "string" } },
      });
      const token = io.env.ADMIN_BOOTSTRAP_TOKEN;
      if (!values.email || !values.name) {
        io.err("bootstrap needs --email and --name");
        return 2;
      }
      if (!token) {
        io.err("Set ADMIN_BOOTSTRAP_TOKEN to the Worker's bootstrap token.");
        return 2;
      }
      const password = (await io.readStdin()).replace(/\r?\n$/, "");
      if (!password) {
        io.err("Pipe the new admin's password on standard input.");
        return 2;
      }
      const base = (values.url ?? io.env.VOICEASSIST_URL ?? DEFAULT_URL).replace(/\/$/, "");
      let res: Awaited<ReturnType<typeof post>>;
      try {
        res = await post(`${base}/api/admin/bootstrap`, token, {
          email: values.email,
          password,
          full_name: values.name,
        });
      } catch (error) {
        io.err(`Could not reach ${base}: ${(error as Error).message}`);
        return 1;
      }
      if (res.status !== 201) {
        io.err(describeProblem(res.status, res.json));
        return 1;
      }
      io.out(`Created admin ${String(res.json.email)} (${String(res.json.id)}). Sign in at ${base}/api/auth/login.`);
      return 0;
    },
  },
};

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    const list = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(12)} ${c.summary}`);
    (name ? io.err : io.out)(
      [name ? `Unknown command: ${name}` : "", "usage: npm run admin -- <command> [options]", ...list]
        .filter(Boolean)
        .join("\n"),
    );
    return name ? 2 : 0;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    io.err(`${(error as Error).message}\nusage: npm run admin -- ${command.usage}`);
    return 2;
  }
}
