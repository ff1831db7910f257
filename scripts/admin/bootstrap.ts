// `bootstrap`: the first admin, with the Worker's ADMIN_BOOTSTRAP_TOKEN.
import { type Command, options, readPassword, UsageError } from "./command.ts";
import { baseUrl, failed, request, timeoutOverride } from "./http.ts";
import { loginHint } from "./session.ts";

export const bootstrap: Command = {
  summary: "create the first admin (only while no admin exists)",
  usage:
    "bootstrap --email EMAIL --name FULL_NAME [--url URL] < password\n" +
    "  The password is read from standard input or asked for (never an argument). ADMIN_BOOTSTRAP_TOKEN must be\n" +
    "  set in this command's environment too: the same value the Worker has (npm run dev's environment, or the\n" +
    "  deployment's secret).",
  async run(args, io) {
    const { values } = options(args, { email: { type: "string" }, name: { type: "string" } });
    const token = io.env.ADMIN_BOOTSTRAP_TOKEN;
    if (!values.email || !values.name) throw new UsageError("bootstrap needs --email and --name");
    if (!token) {
      io.err("Set ADMIN_BOOTSTRAP_TOKEN for this command too, to the Worker's bootstrap token.");
      return 2;
    }
    const base = baseUrl(values.url, io);
    const password = await readPassword(io, `Password for ${values.email}: `);
    if (!password) {
      io.err("Pipe the new admin's password on standard input.");
      return 2;
    }
    const res = await request(base, {
      method: "POST",
      path: "/api/admin/bootstrap",
      token,
      json: { email: values.email, password, full_name: values.name },
      timeoutMs: timeoutOverride(io),
    });
    if (res.status !== 201) return failed(io, res);
    io.out(`Created admin ${String(res.json.email)} (${String(res.json.id)}).`);
    io.out(`Sign in with: ${loginHint(base, io).replace("EMAIL", String(res.json.email))}`);
    return 0;
  },
};
