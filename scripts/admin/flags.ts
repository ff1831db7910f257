// `flags ...`: feature flags over the admin API (/api/admin/flags).
import { readFile } from "node:fs/promises";
import { choice, type Group, type Json, jsonOption, one, options, UsageError } from "./command.ts";
import { allPages, cell, table } from "./format.ts";
import { failed } from "./http.ts";
import { signedIn } from "./session.ts";

/** The admin path of a flag: its key URL-encoded as one path segment. */
function flagPath(key: string): string {
  // URLs resolve "." and ".." (even percent-encoded) as relative segments: no request can name these keys.
  if (key === "." || key === "..") throw new UsageError(`the key "${key}" cannot be addressed in a URL path`);
  return `/api/admin/flags/${encodeURIComponent(key)}`;
}

/** A JSON object option or file, named when it is something else. */
function object(value: unknown, name: string): Json {
  if (!value || typeof value !== "object" || Array.isArray(value))
    throw new UsageError(`${name} must be a JSON object`);
  return value as Json;
}

export const flags: Group = {
  summary: "create, list, read, toggle, archive, import, export and evaluate feature flags",
  note: "Admins write; viewers may read (list, get, export, evaluate).",
  commands: {
    list: {
      summary: "one line per flag: key, type, on/off, version, tags",
      usage:
        "flags list [--tag TAG] [--archived] [--url URL]\n  --archived lists the archived flags instead of the live ones.",
      async run(args, io) {
        const { values } = options(args, { tag: { type: "string" }, archived: { type: "boolean" } });
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const filters = { archived: values.archived ? "true" : "false", tag: values.tag };
        const { items, failure } = await allPages(api, "/api/admin/flags", filters, 500);
        if (failure) return failed(io, failure);
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
    create: {
      summary: "create a flag (off unless --on), from options or a JSON definition",
      usage:
        "flags create KEY [--type boolean|string|number|json] [--kind KIND] [--description TEXT] [--on]\n" +
        "  [--default VALUE] [--tag TAG ...] [--environment ENV ...] [--from FILE|-] [--url URL]\n" +
        "  --from reads more of the flag's fields (strategies, variants, dependencies, schedule...) as a JSON object,\n" +
        "  as POST /api/admin/flags takes them (docs/flags.md); options win over it. --default takes JSON\n" +
        "  (a string flag's may be plain text). With no strategies, an enabled flag is on for everyone.",
      async run(args, io) {
        const { values, positionals } = options(
          args,
          {
            type: { type: "string" },
            kind: { type: "string" },
            description: { type: "string" },
            on: { type: "boolean" },
            default: { type: "string" },
            tag: { type: "string", multiple: true },
            environment: { type: "string", multiple: true },
            from: { type: "string" },
          },
          true,
        );
        const key = one(positionals, "flag key");
        flagPath(key); // refuses the keys no route could address later
        let body: Json = {};
        if (values.from !== undefined) {
          const text = values.from === "-" ? await io.readStdin() : await readFile(values.from, "utf8");
          body = object(jsonOption(text.replace(/^\uFEFF/, ""), `--from ${values.from}`), `--from ${values.from}`);
        }
        const type = values.type ?? body.type;
        if (values.type !== undefined) body.type = values.type;
        if (values.kind !== undefined) body.kind = values.kind;
        if (values.description !== undefined) body.description = values.description;
        if (values.on) body.enabled = true;
        if (values.tag) body.tags = values.tag;
        if (values.environment) body.environments = values.environment;
        if (values.default !== undefined) {
          const raw = values.default;
          body.defaultValue = type === "string" && !raw.startsWith('"') ? raw : jsonOption(raw, "--default");
        }
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const res = await api.call("POST", "/api/admin/flags", { ...body, key });
        if (!res.ok) return failed(io, res);
        const f = res.json;
        io.out(`Created ${cell(f.key)}: ${String(f.type)}, ${f.enabled ? "on" : "off"}, version ${String(f.version)}.`);
        return 0;
      },
    },
    get: {
      summary: "a flag as JSON",
      usage: "flags get KEY [--url URL]",
      async run(args, io) {
        const { values, positionals } = options(args, {}, true);
        const path = flagPath(one(positionals, "flag key"));
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const res = await api.call("GET", path);
        if (!res.ok) return failed(io, res);
        io.out(JSON.stringify(res.json, null, 2));
        return 0;
      },
    },
    toggle: {
      summary: "turn a flag's kill switch on or off (flips it without --on/--off)",
      usage: "flags toggle KEY [--on | --off] [--url URL]",
      async run(args, io) {
        const { values, positionals } = options(args, { on: { type: "boolean" }, off: { type: "boolean" } }, true);
        const path = flagPath(one(positionals, "flag key"));
        if (values.on && values.off) throw new UsageError("give --on or --off, not both");
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const body = values.on ? { enabled: true } : values.off ? { enabled: false } : {};
        const res = await api.call("POST", `${path}/toggle`, body);
        if (!res.ok) return failed(io, res);
        io.out(`${cell(res.json.key)} is ${res.json.enabled ? "on" : "off"} (version ${String(res.json.version)}).`);
        return 0;
      },
    },
    archive: {
      summary: "archive a flag (it then evaluates as not found), or restore it",
      usage: "flags archive KEY [--restore] [--url URL]",
      async run(args, io) {
        const { values, positionals } = options(args, { restore: { type: "boolean" } }, true);
        const path = flagPath(one(positionals, "flag key"));
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const res = await api.call("POST", `${path}/archive`, { archived: !values.restore });
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
        const { values } = options(args, {});
        const api = await signedIn(values.url, io);
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
        "flags import [--mode merge|replace] [--invalid refuse|skip] [--url URL] < flags.json\n" +
        "  merge (default) adds or replaces the document's flags and segments; replace makes the document the\n" +
        "  whole rule set (flags not in it are deleted with their overrides). With --invalid refuse (default)\n" +
        "  all of it lands or none of it; with --invalid skip every valid entry lands and each refused one is listed.",
      async run(args, io) {
        const { values } = options(args, { mode: { type: "string" }, invalid: { type: "string" } });
        const mode = choice("--mode", values.mode, ["merge", "replace"], "merge");
        const invalid = choice("--invalid", values.invalid, ["refuse", "skip"], "refuse");
        const api = await signedIn(values.url, io);
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
        const res = await api.call("POST", `/api/admin/flags/import?mode=${mode}&invalid=${invalid}`, doc);
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
        for (const entry of refusedEntries(res.json)) io.err(`  refused ${entry}`);
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
        const { values } = options(args, {
          user: { type: "string" },
          context: { type: "string" },
          flag: { type: "string", multiple: true },
        });
        let context = values.context === undefined ? {} : object(jsonOption(values.context, "--context"), "--context");
        if (values.user !== undefined) context = { ...context, userId: values.user };
        const api = await signedIn(values.url, io);
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
};

type Refused = { index: number; name?: string; id?: number; errors: { field: string; message: string }[] };

/** With --invalid skip: one line per refused feature or segment, naming every field at fault. */
function refusedEntries(summary: Json): string[] {
  const refused = (summary as { refused?: { features?: Refused[]; segments?: Refused[] } }).refused ?? {};
  const line = (kind: string) => (entry: Refused) =>
    `${kind} ${cell(String(entry.name ?? entry.id ?? `#${entry.index}`))}: ` +
    entry.errors.map((e) => `${e.field} ${e.message}`).join("; ");
  return [...(refused.features ?? []).map(line("feature")), ...(refused.segments ?? []).map(line("segment"))];
}
