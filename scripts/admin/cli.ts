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

/** A command with subcommands (`flags list`, `flags get`, ...). */
interface Group {
  summary: string;
  note?: string;
  commands: Record<string, Command>;
}

const DEFAULT_URL = "http://127.0.0.1:8787";
const TIMEOUT_MS = 30_000;

/** The server did not answer (refused, unknown host, timeout): exit 1, told in one line. */
class Unreachable extends Error {}

type Method = "GET" | "POST" | "PUT";
type Json = Record<string, unknown>;

/** Why a fetch failed, in words: its cause (ECONNREFUSED, ENOTFOUND, ...) or the timeout. */
function failure(error: unknown): string {
  const { name, message, cause } = error as Error & { cause?: Error & { code?: string } };
  if (name === "TimeoutError") return `no answer within ${TIMEOUT_MS / 1000} s`;
  const reason = cause ? cause.message || cause.code : undefined;
  return reason && reason !== message ? `${message} (${reason})` : message;
}

/** One JSON request (a JSON body when given) with a timeout; a JSON answer read back, whatever its status. */
async function request(base: string, method: Method, path: string, token: string, body?: unknown) {
  let status: number;
  let text: string;
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        accept: "application/json, application/problem+json",
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    status = res.status;
    text = await res.text();
  } catch (error) {
    throw new Unreachable(`Could not reach ${base}: ${failure(error)}`);
  }
  let json: Json = {};
  let parsed = true;
  try {
    const value: unknown = text ? JSON.parse(text) : {};
    json = value && typeof value === "object" && !Array.isArray(value) ? (value as Json) : { detail: text };
  } catch {
    // Not the platform answering (a proxy's error page, a wrong --url): shown as the detail.
    json = { detail: text.slice(0, 200) };
    parsed = false;
  }
  return { status, ok: parsed && status >= 200 && status < 300, json };
}

/** Explains a problem+json answer in one line, with its per-field errors. */
const describeProblem = (status: number, body: Record<string, unknown>) => {
  const errors = Array.isArray(body.errors)
    ? (body.errors as { field: string; message: string }[]).map((e) => `\n  ${e.field}: ${e.message}`).join("")
    : "";
  return `${status} ${String(body.code ?? "")}: ${String(body.detail ?? "request failed")}${errors}`;
};

/** The platform's base URL: --url, else VOICEASSIST_URL, else `npm run dev`'s. */
function baseUrl(url: string | undefined, io: CliIo): string {
  const base = (url ?? io.env.VOICEASSIST_URL ?? DEFAULT_URL).replace(/\/+$/, "");
  const protocol = URL.canParse(base) ? new URL(base).protocol : "";
  if (protocol !== "http:" && protocol !== "https:") throw new Error(`--url must be an http(s) URL, not "${base}"`);
  return base;
}

const commands: Record<string, Command | Group> = {
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
      const base = baseUrl(values.url, io);
      const res = await request(base, "POST", "/api/admin/bootstrap", token, {
        email: values.email,
        password,
        full_name: values.name,
      });
      if (res.status !== 201) {
        io.err(describeProblem(res.status, res.json));
        return 1;
      }
      io.out(`Created admin ${String(res.json.email)} (${String(res.json.id)}). Sign in at ${base}/api/auth/login.`);
      return 0;
    },
  },
  flags: {
    summary: "list, read, toggle, archive, import, export and evaluate feature flags",
    note:
      "Signs in with VOICEASSIST_TOKEN (an admin's access token, or an API key va_k_...; viewers may read);\n" +
      `calls --url, else VOICEASSIST_URL, else ${DEFAULT_URL}. Exit codes: 0 done, 1 request failed, 2 bad usage.`,
    commands: {
      list: {
        summary: "one line per flag: key, type, on/off, version, tags",
        usage:
          "flags list [--tag TAG] [--archived] [--url URL]\n  --archived lists the archived flags instead of the live ones.",
        async run(args, io) {
          const { values } = parseArgs({
            args,
            options: { tag: { type: "string" }, archived: { type: "boolean" }, url: { type: "string" } },
          });
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const items: Json[] = [];
          for (let page = 1; ; page++) {
            const query = new URLSearchParams({
              archived: values.archived ? "true" : "false",
              page: String(page),
              page_size: "500",
            });
            if (values.tag !== undefined) query.set("tag", values.tag);
            const res = await api.call("GET", `/api/admin/flags?${query}`);
            if (!res.ok) return failed(io, res);
            const batch = (res.json.items ?? []) as Json[];
            items.push(...batch);
            if (batch.length === 0 || items.length >= Number(res.json.total ?? 0)) break;
          }
          if (items.length === 0) io.err(values.archived ? "No archived flags match." : "No flags match.");
          const rows = items.map((flag) => [
            cell(flag.key),
            String(flag.type),
            flag.enabled ? "on" : "off",
            `v${String(flag.version)}`,
            ((flag.tags ?? []) as unknown[]).map(cell).join(","),
          ]);
          for (const line of table(rows)) io.out(line);
          return 0;
        },
      },
      get: {
        summary: "a flag as JSON",
        usage: "flags get KEY [--url URL]",
        async run(args, io) {
          const { values, key } = withKey(args, {});
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const res = await api.call("GET", flagPath(key));
          if (!res.ok) return failed(io, res);
          io.out(JSON.stringify(res.json, null, 2));
          return 0;
        },
      },
      toggle: {
        summary: "turn a flag's kill switch on or off (flips it without --on/--off)",
        usage: "flags toggle KEY [--on | --off] [--url URL]",
        async run(args, io) {
          const { values, key } = withKey(args, { on: { type: "boolean" }, off: { type: "boolean" } });
          if (values.on && values.off) throw new Error("give --on or --off, not both");
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const body = values.on ? { enabled: true } : values.off ? { enabled: false } : {};
          const res = await api.call("POST", `${flagPath(key)}/toggle`, body);
          if (!res.ok) return failed(io, res);
          io.out(`${cell(res.json.key)} is ${res.json.enabled ? "on" : "off"} (version ${String(res.json.version)}).`);
          return 0;
        },
      },
      archive: {
        summary: "archive a flag (it then evaluates as not found), or restore it",
        usage: "flags archive KEY [--restore] [--url URL]",
        async run(args, io) {
          const { values, key } = withKey(args, { restore: { type: "boolean" } });
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const res = await api.call("POST", `${flagPath(key)}/archive`, { archived: !values.restore });
          if (!res.ok) return failed(io, res);
          const state = res.json.archived ? "Archived" : "Restored";
          io.out(`${state} ${cell(res.json.key)} (version ${String(res.json.version)}).`);
          return 0;
        },
      },
      export: {
        summary: "every live flag and segment as an Unleash client-API document, on standard output",
        usage:
          "flags export [--url URL] > flags.json\n" +
          "  Redirecting? Run npm silently (npm run -s admin -- flags export): npm prints a banner on stdout.",
        async run(args, io) {
          const { values } = parseArgs({ args, options: { url: { type: "string" } } });
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const res = await api.call("GET", "/api/admin/flags/export");
          if (!res.ok) return failed(io, res);
          io.out(JSON.stringify(res.json, null, 2));
          return 0;
        },
      },
      import: {
        summary: "store an Unleash client-API document read from standard input",
        usage:
          "flags import [--mode merge|replace] [--url URL] < flags.json\n" +
          "  merge (default) adds or replaces the document's flags and segments; replace makes the document the\n" +
          "  whole rule set (flags not in it are deleted with their overrides). All of it lands or none of it.",
        async run(args, io) {
          const { values } = parseArgs({ args, options: { mode: { type: "string" }, url: { type: "string" } } });
          const mode = values.mode ?? "merge";
          if (mode !== "merge" && mode !== "replace") throw new Error(`--mode must be merge or replace, not "${mode}"`);
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const input = (await io.readStdin()).replace(/^\uFEFF/, "");
          if (!input.trim()) {
            io.err("Pipe an Unleash client-API document (JSON) on standard input.");
            return 2;
          }
          let doc: unknown;
          try {
            doc = JSON.parse(input);
          } catch (error) {
            io.err(`Standard input is not JSON: ${(error as Error).message}`);
            return 2;
          }
          const res = await api.call("POST", `/api/admin/flags/import?mode=${mode}`, doc);
          if (!res.ok) return failed(io, res);
          const s = res.json as { created?: string[]; updated?: string[]; removed?: string[] } & Json;
          const [created, updated, removed] = [s.created ?? [], s.updated ?? [], s.removed ?? []];
          io.out(
            `Imported (${String(s.mode ?? mode)}), rule-set version ${String(s.version)}: ${created.length} created, ` +
              `${updated.length} updated, ${String(s.unchanged ?? 0)} unchanged, ${removed.length} removed, ` +
              `${String(s.segments ?? 0)} segments.`,
          );
          for (const [label, keys] of [
            ["created", created],
            ["updated", updated],
            ["removed", removed],
          ] as const) {
            if (keys.length) io.out(`  ${label}: ${keys.map(cell).join(", ")}`);
          }
          return 0;
        },
      },
      evaluate: {
        summary: "evaluate every flag for a context (the admin playground): key, enabled, variant, reason",
        usage:
          "flags evaluate [--user ID] [--context JSON] [--flag KEY ...] [--url URL]\n" +
          '  --context takes Unleash\'s fields, e.g. \'{"environment":"production","properties":{"plan":"pro"}}\';\n' +
          "  --user sets its userId (that user's overrides apply). --flag limits it to those flags.",
        async run(args, io) {
          const { values } = parseArgs({
            args,
            options: {
              user: { type: "string" },
              context: { type: "string" },
              flag: { type: "string", multiple: true },
              url: { type: "string" },
            },
          });
          let context: Json = {};
          if (values.context !== undefined) {
            let parsed: unknown;
            try {
              parsed = JSON.parse(values.context);
            } catch (error) {
              throw new Error(`--context is not JSON: ${(error as Error).message}`);
            }
            if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
              throw new Error("--context must be a JSON object");
            }
            context = parsed as Json;
          }
          if (values.user !== undefined) context = { ...context, userId: values.user };
          const api = flagApi(values.url, io);
          if (!api) return 2;
          const res = await api.call("POST", "/api/admin/flags/playground", {
            context,
            ...(values.flag ? { flags: values.flag } : {}),
          });
          if (!res.ok) return failed(io, res);
          const results = Object.entries((res.json.flags ?? {}) as Record<string, Json>);
          if (results.length === 0) io.err("No flags to evaluate.");
          const rows = results.map(([key, result]) => [
            cell(key),
            result.enabled ? "on" : "off",
            cell((result.variant as Json | undefined)?.name ?? "disabled"),
            String(result.reason),
          ]);
          for (const line of table(rows)) io.out(line);
          return 0;
        },
      },
    },
  },
};

/** Base URL and token of the flag commands; undefined (told why) without a token. */
function flagApi(url: string | undefined, io: CliIo) {
  const token = io.env.VOICEASSIST_TOKEN?.trim();
  if (!token) {
    io.err("Set VOICEASSIST_TOKEN to an admin's access token (POST /api/auth/login) or API key (va_k_...).");
    return undefined;
  }
  if (/\s/.test(token)) throw new Error("VOICEASSIST_TOKEN must be one token, without spaces");
  const base = baseUrl(url, io);
  return { call: (method: Method, path: string, body?: unknown) => request(base, method, path, token, body) };
}

const failed = (io: CliIo, res: { status: number; json: Json }) => {
  io.err(describeProblem(res.status, res.json));
  return 1;
};

/** Options plus exactly one positional KEY (after `--` when it starts with a dash). */
function withKey<T extends Record<string, { type: "boolean" }>>(args: string[], options: T) {
  const { values, positionals } = parseArgs({
    args,
    options: { ...options, url: { type: "string" as const } },
    allowPositionals: true,
  });
  if (positionals.length > 1) throw new Error("give one flag key (quote a key with spaces)");
  if (!positionals[0]) throw new Error("give the flag key");
  return { values: values as { [K in keyof T]?: boolean } & { url?: string }, key: positionals[0] as string };
}

/** The admin path of a flag: its key URL-encoded as one path segment. */
function flagPath(key: string): string {
  // URLs resolve "." and ".." (even percent-encoded) as relative segments: no request can name these keys.
  if (key === "." || key === "..") throw new Error(`the key "${key}" cannot be addressed in a URL path`);
  return `/api/admin/flags/${encodeURIComponent(key)}`;
}

/** A value for one column: quoted as JSON when it holds a space, a comma or a control character. */
const cell = (value: unknown): string => {
  const text = String(value);
  return /[\s,"\p{Cc}]/u.test(text) || text === "" ? JSON.stringify(text) : text;
};

/** Rows as aligned columns (the last one unpadded). */
function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length))) ?? [];
  return rows.map((row) =>
    row
      .map((value, i) => (i === row.length - 1 ? value : value.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}

/** Runs a command of the table, or lists the table; `prefix` is the words before it ("flags "). */
async function dispatch(
  entries: Record<string, Command | Group>,
  prefix: string,
  argv: string[],
  io: CliIo,
  note = "",
) {
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
  if ("commands" in entry) return dispatch(entry.commands, `${prefix}${name} `, rest, io, entry.note);
  const options = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (options.includes("--help") || options.includes("-h")) {
    io.out(`usage: npm run admin -- ${entry.usage}`);
    return 0;
  }
  try {
    return await entry.run(rest, io);
  } catch (error) {
    if (error instanceof Unreachable) {
      io.err(error.message);
      return 1;
    }
    io.err(`${(error as Error).message}\nusage: npm run admin -- ${entry.usage}`);
    return 2;
  }
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  return dispatch(commands, "", argv, io);
}
