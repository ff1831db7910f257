// `users ...`: accounts over the admin API (/api/admin/users).
import { type Command, CommandFailed, choice, type Group, type Json, one, options, UsageError } from "./command.ts";
import { allPages, cell, table } from "./format.ts";
import { describeProblem, failed } from "./http.ts";
import { type Api, signedIn } from "./session.ts";

const ROLES = ["user", "viewer", "admin"];
const STATUSES = ["active", "inactive", "deleted"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const status = (user: Json) => (user.deleted_at ? "deleted" : user.is_active ? "active" : "inactive");

/** One line per user: id, email, role, status, full name. */
const rows = (users: Json[]) =>
  table(users.map((u) => [String(u.id), cell(u.email), String(u.role), status(u), cell(u.full_name)]));

/** A user's id: given as one, or found by exact email. */
async function userId(api: Api, idOrEmail: string): Promise<string> {
  if (UUID.test(idOrEmail)) return idOrEmail;
  if (!idOrEmail.includes("@")) throw new UsageError(`"${idOrEmail}" is neither a user id nor an email`);
  const res = await api.call("GET", `/api/admin/users?${new URLSearchParams({ q: idOrEmail, page_size: "200" })}`);
  if (!res.ok) throw new CommandFailed(describeProblem(res.status, res.json));
  const match = ((res.json.items ?? []) as Json[]).find(
    (u) => String(u.email).toLowerCase() === idOrEmail.toLowerCase(),
  );
  if (!match) throw new CommandFailed(`No user with the email ${idOrEmail}.`);
  return String(match.id);
}

/**
 * An admin change of one user (`users deactivate USER`...), printed as the user's line after it. `body` reads the
 * arguments after USER (none when absent): a body makes it a PATCH of /{id}/{action}, else a POST.
 */
function change(summary: string, usage: string, action: string, body?: (extra: string[]) => unknown): Command {
  return {
    summary,
    usage,
    async run(args, io) {
      const { values, positionals } = options(args, {}, true);
      const [who, ...extra] = positionals;
      if (!who) throw new UsageError("give the user's id or email");
      if (!body && extra.length) throw new UsageError("give one user");
      const json = body?.(extra);
      const api = await signedIn(values.url, io);
      if (!api) return 2;
      const path = `/api/admin/users/${await userId(api, who)}/${action}`;
      const res = await api.call(json === undefined ? "POST" : "PATCH", path, json);
      if (!res.ok) return failed(io, res);
      for (const line of rows([res.json])) io.out(line);
      return 0;
    },
  };
}

export const users: Group = {
  summary: "list and search users; change a role; deactivate or reactivate an account",
  note: "USER is a user's id or email. Admins change; viewers may list.",
  commands: {
    list: {
      summary: "one line per user: id, email, role, status, full name (newest first)",
      usage:
        "users list [TEXT] [--role user|viewer|admin] [--status active|inactive|deleted] [--url URL]\n" +
        "  TEXT searches emails and full names.",
      async run(args, io) {
        const { values, positionals } = options(args, { role: { type: "string" }, status: { type: "string" } }, true);
        if (positionals.length > 1) throw new UsageError("give one search text (quote it when it holds spaces)");
        choice("--role", values.role, ROLES);
        choice("--status", values.status, STATUSES);
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const { items, failure } = await allPages(api, "/api/admin/users", {
          q: positionals[0],
          role: values.role,
          status: values.status,
        });
        if (failure) return failed(io, failure);
        if (items.length === 0) io.err("No users match.");
        for (const line of rows(items)) io.out(line);
        return 0;
      },
    },
    role: change(
      "give a user another role (at their next request)",
      "users role USER user|viewer|admin [--url URL]",
      "role",
      (extra) => {
        const role = one(extra, "role");
        if (!ROLES.includes(role)) throw new UsageError(`the role must be one of ${ROLES.join(", ")}`);
        return { role };
      },
    ),
    deactivate: change(
      "deactivate an account: every session of it ends at once",
      "users deactivate USER [--url URL]",
      "deactivate",
    ),
    reactivate: change("reactivate a deactivated account", "users reactivate USER [--url URL]", "activate"),
  },
};
