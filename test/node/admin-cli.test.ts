import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../scripts/admin/cli.ts";
import {
  bootstrapAdmin,
  type DevServer,
  registerUser,
  signInAt,
  startDevServer,
  TEST_PASSWORD,
  withDevLog,
} from "./dev-server.ts";

const ROOT = join(import.meta.dirname, "../..");
const TOKEN = "cli-test-bootstrap-token-0123456789";
const PASSWORD = TEST_PASSWORD;
const ADMIN = "first@example.test";

let server: DevServer;
let url: string;
// Every run's kept sessions live here, never in the real ~/.config.
let scratch: string;

// The whole path a newcomer takes: `npm run dev` on a port of its own (not 8787), the CLI over HTTP to it.
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "voiceassist-admin-cli-"));
  server = await startDevServer({
    https: false,
    variables: {
      ADMIN_BOOTSTRAP_TOKEN: TOKEN,
      LOG_LEVEL: "warn",
      // The suite signs in and registers more often than the production limits allow.
      RATE_LIMIT_LOGIN: "200/60",
      RATE_LIMIT_REGISTER: "200/60",
    },
  });
  url = server.url;
}, 240_000);

afterAll(async () => {
  await server?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function io(stdin: string, env: NodeJS.ProcessEnv = { ADMIN_BOOTSTRAP_TOKEN: TOKEN }) {
  const out: string[] = [];
  const err: string[] = [];
  const writes: string[] = [];
  return {
    out,
    err,
    writes,
    io: {
      env: { VOICEASSIST_CREDENTIALS: join(scratch, "none.json"), ...env },
      readStdin: async () => stdin,
      out: (l: string) => out.push(l),
      write: (t: string) => writes.push(t),
      err: (l: string) => err.push(l),
    },
  };
}

let adminToken: string | undefined;
/** The admin's access token (the bootstrap tests create the admin; created here when they were filtered out). */
async function admin(): Promise<string> {
  adminToken ??= await withDevLog(server, () =>
    signInAt(server, ADMIN).catch(() => bootstrapAdmin(server, TOKEN, ADMIN)),
  );
  return adminToken;
}

describe("npm run admin -- bootstrap", () => {
  it("explains usage and refuses missing options", async () => {
    const run = io("");
    expect(await runCli(["bootstrap", "--email", "a@b.test"], run.io)).toBe(2);
    expect(run.err.join("\n")).toContain("--name");
    expect(await runCli(["nonsense"], io("").io)).toBe(2);
    // The token must be in the command's own environment, not only in the Worker's.
    const noToken = io(`${PASSWORD}\n`, {});
    expect(await runCli(["bootstrap", "--email", "a@b.test", "--name", "A", "--url", url], noToken.io)).toBe(2);
    expect(noToken.err.join("\n")).toContain("ADMIN_BOOTSTRAP_TOKEN for this command too");
  });

  it("shows the API's field errors", async () => {
    const run = io("short\n");
    expect(await runCli(["bootstrap", "--email", "admin@example.test", "--name", "Ada", "--url", url], run.io)).toBe(1);
    expect(run.err.join("\n")).toContain("body.password");
  });

  it("creates the first admin, then refuses a second", async () => {
    const first = io(`${PASSWORD}\n`);
    expect(
      await runCli(["bootstrap", "--email", "first@example.test", "--name", "First", "--url", url], first.io),
    ).toBe(0);
    expect(first.out.join("\n")).toContain("first@example.test");
    // A command that signs in, not the POST-only route a browser cannot open.
    expect(first.out.at(-1)).toBe(`Sign in with: npm run admin -- login --email first@example.test --url ${url}`);
    expect(first.out.join("\n")).not.toContain("/api/auth/login");

    const login = await fetch(`${url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "first@example.test", password: PASSWORD }),
    });
    expect(((await login.json()) as { user: { role: string } }).user.role).toBe("admin");

    // The real command, as an operator types it, with the password on standard input.
    const child = promisify(execFile)(
      "node",
      ["scripts/admin.ts", "bootstrap", "--email", "second@example.test", "--name", "Second"],
      {
        cwd: ROOT,
        env: { ...process.env, ADMIN_BOOTSTRAP_TOKEN: TOKEN, VOICEASSIST_URL: url },
      },
    );
    child.child.stdin?.end(`${PASSWORD}\n`);
    const second = await child.then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(second.code).toBe(1);
    expect(second.stderr).toContain("409");
  });

  it("refuses a wrong token", async () => {
    const run = io(`${PASSWORD}\n`, { ADMIN_BOOTSTRAP_TOKEN: "wrong-token-wrong-token-wrong" });
    expect(await runCli(["bootstrap", "--email", "x@example.test", "--name", "X", "--url", url], run.io)).toBe(1);
    expect(run.err.join("\n")).toContain("401");
  });
});

describe("npm run admin -- flags", () => {
  const CHECKOUT = "checkout.new-flow";
  // Any UTF-8: a slash, a space, a question mark, a percent sign and non-Latin letters, all in one path segment.
  const ODD = "ünïcode/ключ ✓?50%";
  const document = {
    version: 2,
    features: [
      {
        name: CHECKOUT,
        type: "experiment",
        enabled: true,
        strategies: [
          {
            name: "flexibleRollout",
            parameters: { rollout: "100", stickiness: "default", groupId: CHECKOUT },
            constraints: [{ contextName: "userId", operator: "IN", values: ["u-1", "u-2"] }],
          },
        ],
        variants: [{ name: "blue", weight: 1000, weightType: "variable", stickiness: "default" }],
      },
      { name: ODD, enabled: false, strategies: [{ name: "default" }] },
      { name: "beta-only", enabled: true, strategies: [{ name: "default", segments: [7] }] },
    ],
    segments: [
      { id: 7, name: "beta", constraints: [{ contextName: "environment", operator: "IN", values: ["beta"] }] },
    ],
  };
  let env: NodeJS.ProcessEnv;
  let keyEnv: NodeJS.ProcessEnv;

  /** Runs `flags ...` against the test Worker as an admin (or with the given environment). */
  async function flags(args: string[], stdin = "", withEnv: NodeJS.ProcessEnv = env) {
    const run = io(stdin, withEnv);
    const code = await runCli(["flags", ...args, "--url", url], run.io);
    return { code, out: run.out.join("\n"), err: run.err.join("\n") };
  }

  beforeAll(async () => {
    const accessToken = await admin();
    env = { VOICEASSIST_TOKEN: accessToken };
    const key = await fetch(`${url}/api/users/me/api-keys`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ name: "admin cli test" }),
    });
    keyEnv = { VOICEASSIST_TOKEN: ((await key.json()) as { key: string }).key };
  }, 60_000);

  it("refuses bad usage and a missing token (exit 2)", async () => {
    const noToken = await flags(["list"], "", {});
    expect(noToken.code).toBe(2);
    expect(noToken.err).toContain("VOICEASSIST_TOKEN");
    expect((await flags(["import"], JSON.stringify(document), {})).code).toBe(2);

    const noKey = await flags(["toggle"]);
    expect(noKey.code).toBe(2);
    expect(noKey.err).toContain("usage: npm run admin -- flags toggle KEY");
    expect((await flags(["toggle", CHECKOUT, "--on", "--off"])).code).toBe(2);
    expect((await flags(["get", "."])).err).toContain("cannot be addressed");
    expect((await flags(["import", "--mode", "sideways"], JSON.stringify(document))).code).toBe(2);
    expect((await flags(["import"], "")).code).toBe(2);
    expect((await flags(["import"], "{not json")).err).toContain("not JSON");
    expect((await flags(["evaluate", "--context", "[1]"])).code).toBe(2);
    expect((await flags(["list", "--colour"])).code).toBe(2);
    const unknown = await flags(["nonsense"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("Unknown command: flags nonsense");

    const help = io("");
    expect(await runCli(["flags"], help.io)).toBe(0);
    expect(help.out.join("\n")).toContain("evaluate");
  });

  it("says so when the server cannot be reached (exit 1)", async () => {
    // A port nobody listens on: taken from the system, then closed.
    const listener = createServer().listen(0, "127.0.0.1");
    await once(listener, "listening");
    const { port } = listener.address() as AddressInfo;
    await new Promise((resolve) => listener.close(resolve));
    const run = io("", env);
    expect(await runCli(["flags", "list", "--url", `http://127.0.0.1:${port}`], run.io)).toBe(1);
    expect(run.err.join("\n")).toMatch(new RegExp(`^Could not reach http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it("imports a document, then lists, toggles, gets, archives and evaluates its flags", async () => {
    const imported = await flags(["import"], JSON.stringify(document));
    expect(imported.err).toBe("");
    expect(imported.code).toBe(0);
    expect(imported.out).toMatch(/^Imported \(merge\), rule-set version \d+: 3 created, 0 updated, 0 unchanged/);
    expect(imported.out).toContain(`created: ${CHECKOUT}, ${JSON.stringify(ODD)}, beta-only`);

    // One line per flag: key, type, on/off, version, tags. An API key works as the token too.
    const listed = await flags(["list"], "", keyEnv);
    expect(listed.code).toBe(0);
    const lines = listed.out.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.find((l) => l.startsWith(CHECKOUT))?.split(/ +/)).toEqual([CHECKOUT, "boolean", "on", "v1"]);
    expect(lines.find((l) => l.startsWith(JSON.stringify(ODD)))).toMatch(/ boolean +off +v1$/);

    // Tags are the platform's own field: set one over the API, then filter by it.
    const patched = await fetch(`${url}/api/admin/flags/${encodeURIComponent(CHECKOUT)}`, {
      method: "PATCH",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${env.VOICEASSIST_TOKEN}`,
        "if-match": '"1"',
      },
      body: JSON.stringify({ tags: ["checkout", "q3 test"] }),
    });
    expect(patched.status).toBe(200);
    const tagged = await flags(["list", "--tag", "checkout"]);
    expect(tagged.out.split("\n")).toHaveLength(1);
    expect(tagged.out).toMatch(new RegExp(`^${CHECKOUT.replace(".", "\\.")} +boolean +on +v2 +checkout,"q3 test"$`));

    const on = await flags(["toggle", ODD, "--on"]);
    expect(on).toEqual({ code: 0, out: `${JSON.stringify(ODD)} is on (version 2).`, err: "" });
    expect((await flags(["toggle", ODD])).out).toContain("is off (version 3)");
    expect((await flags(["toggle", ODD])).out).toContain("is on (version 4)");
    expect((await flags(["toggle", ODD, "--on"])).out).toContain("is on (version 4)"); // no change, no new version

    const got = await flags(["get", ODD]);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out)).toMatchObject({ key: ODD, enabled: true, version: 4, archived: false });
    const missing = await flags(["get", "no-such-flag"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("404");

    const evaluate = async (...args: string[]) => {
      const run = await flags(["evaluate", ...args]);
      expect(run.code).toBe(0);
      // key (quoted when it holds a space), enabled, variant, reason
      return Object.fromEntries(
        run.out.split("\n").map((line) => {
          const words = line.split(/ +/);
          return [words.slice(0, -3).join(" "), words.slice(-3)];
        }),
      );
    };
    expect(await evaluate("--user", "u-1")).toMatchObject({
      [CHECKOUT]: ["on", "blue", "TARGETING_MATCH"],
      [JSON.stringify(ODD)]: ["on", "disabled", "TARGETING_MATCH"],
      "beta-only": ["off", "disabled", "DEFAULT"],
    });
    const beta = await evaluate("--user", "u-9", "--context", '{"environment":"beta","userId":"u-1"}');
    expect(beta[CHECKOUT]).toEqual(["off", "disabled", "DEFAULT"]); // --user wins over the context's userId
    expect(beta["beta-only"]).toEqual(["on", "disabled", "TARGETING_MATCH"]);
    expect(Object.keys(await evaluate("--flag", CHECKOUT))).toEqual([CHECKOUT]);
    const badContext = await flags(["evaluate", "--context", '{"currentTime":"yesterday"}']);
    expect(badContext.code).toBe(1);
    expect(badContext.err).toContain("body.context.currentTime");

    expect((await flags(["archive", ODD])).out).toBe(`Archived ${JSON.stringify(ODD)} (version 5).`);
    expect((await flags(["list", "--archived"])).out).toMatch(
      new RegExp(`^${JSON.stringify(ODD).replace("?", "\\?")} `),
    );
    expect((await flags(["list"])).out).not.toContain("ключ");
    expect((await evaluate("--flag", ODD))[JSON.stringify(ODD)]).toEqual(["off", "disabled", "NOT_FOUND"]);
    expect((await flags(["archive", ODD, "--restore"])).out).toBe(`Restored ${JSON.stringify(ODD)} (version 6).`);
  });

  it("exports a document that imports back unchanged, through the real command's pipes", async () => {
    const exec = promisify(execFile);
    const childEnv = { ...process.env, ...env, VOICEASSIST_URL: url };
    const exported = await exec("node", ["scripts/admin.ts", "flags", "export"], { cwd: ROOT, env: childEnv });
    const doc = JSON.parse(exported.stdout) as { features: { name: string }[]; segments: { id: number }[] };
    expect(doc.features.map((f) => f.name).sort()).toEqual(["beta-only", CHECKOUT, ODD].sort());
    expect(doc.segments.map((s) => s.id)).toEqual([7]);

    const child = exec("node", ["scripts/admin.ts", "flags", "import", "--mode", "replace"], {
      cwd: ROOT,
      env: childEnv,
    });
    child.child.stdin?.end(exported.stdout);
    const reimported = await child;
    expect(reimported.stdout).toMatch(
      /^Imported \(replace\), rule-set version \d+: 0 created, 0 updated, 3 unchanged, 0 removed/,
    );
  });

  it("names the field of a refused import and stores nothing (exit 1)", async () => {
    const bad = {
      version: 2,
      features: [
        { name: "fine-flag", enabled: true, strategies: [] },
        {
          name: "bad-flag",
          enabled: true,
          strategies: [
            { name: "default", constraints: [{ contextName: "appVersion", operator: "SEMVER_GT", value: "one" }] },
          ],
        },
      ],
    };
    const refused = await flags(["import"], JSON.stringify(bad));
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("422 VALIDATION_FAILED");
    expect(refused.err).toContain("body.features[1].strategies[0].constraints[0].value");
    expect((await flags(["get", "fine-flag"])).code).toBe(1);
    const skipped = await flags(["import", "--invalid", "skip"], JSON.stringify(bad));
    expect(skipped.code).toBe(0);
    expect(skipped.err).toContain("refused feature bad-flag: body.features[1].strategies[0].constraints[0].value");
    expect((await flags(["get", "fine-flag"])).code).toBe(0);
    expect((await flags(["get", "bad-flag"])).code).toBe(1);
    expect((await flags(["import", "--invalid", "maybe"], JSON.stringify(bad))).code).toBe(2);
  });

  // Last in this suite: the tests above count the flags.
  it("creates a flag from options or from a JSON definition", async () => {
    const created = await flags([
      "create",
      "cli.colour",
      "--type",
      "string",
      "--default",
      "blue",
      "--tag",
      "made-by-cli",
      "--description",
      "from the CLI",
    ]);
    expect(created).toEqual({ code: 0, out: "Created cli.colour: string, off, version 1.", err: "" });
    expect(JSON.parse((await flags(["get", "cli.colour"])).out)).toMatchObject({
      type: "string",
      defaultValue: "blue",
      tags: ["made-by-cli"],
      description: "from the CLI",
      enabled: false,
    });
    const again = await flags(["create", "cli.colour"]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^409 CONFLICT: /);

    const rollout = {
      strategies: [{ name: "default", constraints: [{ contextName: "userId", operator: "IN", values: ["u-7"] }] }],
    };
    const fromStdin = await flags(["create", "cli.rollout", "--on", "--from", "-"], JSON.stringify(rollout));
    expect(fromStdin.out).toBe("Created cli.rollout: boolean, on, version 1.");
    const evaluated = await flags(["evaluate", "--flag", "cli.rollout", "--user", "u-7"]);
    expect(evaluated.out.split(/ +/)).toEqual(["cli.rollout", "on", "disabled", "TARGETING_MATCH"]);

    const badType = await flags(["create", "cli.bad", "--type", "colour"]);
    expect(badType.code).toBe(1);
    expect(badType.err).toContain("body.type");
    expect((await flags(["create"])).code).toBe(2);
    expect((await flags(["create", "cli.bad", "--from", "-"], "[1]")).err).toContain("must be a JSON object");
  });
});

describe("npm run dev on a PORT of its own", () => {
  it("is where the CLI calls when neither --url nor VOICEASSIST_URL is given", async () => {
    const token = await admin();
    const run = io("", { PORT: String(server.port), VOICEASSIST_TOKEN: token });
    expect(await runCli(["flags", "list"], run.io)).toBe(0);
    expect(run.err.join("\n")).not.toContain("Could not reach");

    const badPort = io("", { PORT: "eighty", VOICEASSIST_TOKEN: token });
    expect(await runCli(["flags", "list"], badPort.io)).toBe(2);
    expect(badPort.err.join("\n")).toContain('PORT must be a port number (npm run dev\'s), not "eighty"');
  });

  it("allows its own origin for CORS, under both local names", async () => {
    for (const origin of [`http://127.0.0.1:${server.port}`, `http://localhost:${server.port}`]) {
      const res = await fetch(`${url}/health`, { headers: { origin } });
      expect(res.headers.get("access-control-allow-origin")).toBe(origin);
    }
    const other = await fetch(`${url}/health`, { headers: { origin: "http://127.0.0.1:1" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("npm run admin -- login", () => {
  let env: NodeJS.ProcessEnv;
  let file: string;

  beforeAll(async () => {
    await admin();
    // In a folder that does not exist yet: login makes it.
    file = join(scratch, "login", "config", "credentials.json");
    env = { VOICEASSIST_CREDENTIALS: file };
  });

  async function cli(args: string[], stdin = "", withEnv: NodeJS.ProcessEnv = env) {
    const run = io(stdin, withEnv);
    const code = await runCli([...args, "--url", url], run.io);
    return { code, out: run.out.join("\n"), err: run.err.join("\n") };
  }
  const kept = async () => JSON.parse(await readFile(file, "utf8")).sessions[url];
  const keep = async (session: Record<string, string>) =>
    writeFile(file, JSON.stringify({ sessions: { [url]: session } }), { mode: 0o600 });
  const tokensIn = (text: string, session: Record<string, string>) =>
    text.includes(session.access_token as string) || text.includes(session.refresh_token as string);

  it("refuses a wrong password, a missing email and a missing password, and keeps nothing", async () => {
    const wrong = await cli(["login", "--email", ADMIN], "not-the-password-at-all\n");
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/^401 UNAUTHORIZED: The email or password is wrong\./);
    expect((await cli(["login"], `${PASSWORD}\n`)).code).toBe(2);
    expect((await cli(["login", "--email", ADMIN], "")).code).toBe(2);
    await expect(stat(file)).rejects.toThrow();
  });

  it("keeps the session in a file only its owner can read; the next commands use it", async () => {
    const signedIn = await cli(["login", "--email", ADMIN], `${PASSWORD}\n`);
    expect(signedIn.code).toBe(0);
    expect(signedIn.out).toBe(
      `Signed in to ${url} as ${ADMIN} (admin).\nThe next commands use this session until it ends; it is kept in ${file}.`,
    );
    const session = await kept();
    expect(session).toMatchObject({ email: ADMIN, role: "admin" });
    expect(tokensIn(signedIn.out + signedIn.err, session)).toBe(false);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(file, ".."))).mode & 0o777).toBe(0o700);

    const listed = await cli(["users", "list", ADMIN]);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(ADMIN);
    // VOICEASSIST_TOKEN, when set, still wins.
    const envToken = await cli(["users", "list"], "", { ...env, VOICEASSIST_TOKEN: "not-a-token" });
    expect(envToken.code).toBe(1);
    expect(envToken.err).toMatch(/^401 /);
  });

  it("refreshes an expired access token with the refresh token, and once more when the server refuses one", async () => {
    const before = await kept();
    await keep({ ...before, access_token: "expired", access_expires_at: new Date(Date.now() - 1000).toISOString() });
    const listed = await cli(["users", "list", ADMIN]);
    expect(listed.err).toBe("");
    expect(listed.code).toBe(0);
    const after = await kept();
    expect(after.access_token).not.toBe("expired");
    expect(after.refresh_token).not.toBe(before.refresh_token); // spent and replaced
    expect(Date.parse(after.access_expires_at)).toBeGreaterThan(Date.now());
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(tokensIn(listed.out, after)).toBe(false);

    // The file says the token is good, the server does not (another signing key, a clock ahead): refreshed, retried.
    await keep({ ...after, access_token: "refused" });
    const retried = await cli(["kb", "list"]);
    expect(retried.code).toBe(0);
    expect((await kept()).access_token).not.toBe("refused");
  });

  it("asks to sign in again once the session cannot be refreshed, and forgets it", async () => {
    const session = await kept();
    await keep({ ...session, access_expires_at: new Date(0).toISOString(), refresh_token: "spent-long-ago" });
    const ended = await cli(["users", "list"]);
    expect(ended.code).toBe(1);
    expect(ended.err).toContain(`Sign in again: npm run admin -- login --email EMAIL --url ${url}`);
    await expect(stat(file)).rejects.toThrow();
  });

  it("logout ends the session on the server and forgets it", async () => {
    expect((await cli(["login", "--email", ADMIN], `${PASSWORD}\n`)).code).toBe(0);
    const session = await kept();
    expect(await cli(["logout"])).toEqual({ code: 0, out: `Signed out of ${url}.`, err: "" });
    const me = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${session.access_token}` } });
    expect(me.status).toBe(401);
    await expect(stat(file)).rejects.toThrow();
    const after = await cli(["users", "list"]);
    expect(after.code).toBe(2);
    expect(after.err).toContain(
      `Not signed in to ${url}. Sign in with: npm run admin -- login --email EMAIL --url ${url}`,
    );
    expect((await cli(["logout"])).out).toBe(`Not signed in to ${url}.`);
  });
});

describe("npm run admin -- users", () => {
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    env = { VOICEASSIST_TOKEN: await admin() };
  });
  async function users(args: string[]) {
    const run = io("", env);
    const code = await runCli(["users", ...args, "--url", url], run.io);
    return { code, out: run.out.join("\n"), err: run.err.join("\n") };
  }

  it("lists and searches, changes a role, deactivates and reactivates an account", async () => {
    const ada = await registerUser(server, "ada.cli@example.test");
    const found = await users(["list", "ada.cli"]);
    expect(found.code).toBe(0);
    expect(found.out.split(/ +/)).toEqual([ada.id, "ada.cli@example.test", "user", "active", '"Test', 'User"']);
    const admins = await users(["list", "--role", "admin"]);
    expect(admins.out).toContain(ADMIN);
    expect(admins.out).not.toContain("ada.cli");

    expect((await users(["role", "ada.cli@example.test", "viewer"])).out).toMatch(/ viewer +active /);
    expect((await users(["role", ada.id, "user"])).out).toMatch(/ user +active /);

    expect((await users(["deactivate", "ADA.CLI@example.test"])).out).toMatch(/ user +inactive /);
    const me = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${ada.token}` } });
    expect(me.status).toBe(401); // every session ended at once
    expect((await users(["list", "--status", "inactive"])).out).toContain("ada.cli@example.test");
    expect((await users(["reactivate", ada.id])).out).toMatch(/ user +active /);
  });

  it("says what is wrong: usage (exit 2), the server's reason (exit 1)", async () => {
    expect((await users(["role", "ada.cli@example.test", "superuser"])).code).toBe(2);
    expect((await users(["role", "ada.cli@example.test"])).code).toBe(2);
    expect((await users(["deactivate", "somebody"])).err).toContain("neither a user id nor an email");
    expect((await users(["list", "--status", "asleep"])).code).toBe(2);
    const nobody = await users(["deactivate", "nobody@example.test"]);
    expect(nobody).toMatchObject({ code: 1, err: "No user with the email nobody@example.test." });
    const last = await users(["deactivate", ADMIN]);
    expect(last.code).toBe(1);
    expect(last.err).toBe("409 CONFLICT: This is the last active admin; make another admin first.");
  });
});

describe("npm run admin -- kb and ask", () => {
  const text =
    "# Frostbite care\n\nFrostbite is treated by rewarming the affected area in warm water at 37 to 39 degrees " +
    "Celsius for 15 to 30 minutes.\n\n## Signs\n\nNumbness, and white or greyish-yellow skin that feels waxy.\n";
  let env: NodeJS.ProcessEnv;
  let file: string;
  let id: string;

  beforeAll(async () => {
    env = { VOICEASSIST_TOKEN: await admin() };
    file = join(scratch, "frostbite-care.md");
    await writeFile(file, text);
  });
  async function cli(args: string[]) {
    const run = io("", env);
    const code = await runCli([...args, "--url", url], run.io);
    return { code, out: run.out.join("\n"), err: run.err.join("\n"), writes: run.writes };
  }

  it("uploads a document and waits until it is ready; lists it and shows its status", async () => {
    const uploaded = await cli(["kb", "upload", file, "--tags", "cli-test,frostbite", "--wait"]);
    expect(uploaded.code).toBe(0);
    const [first, last] = uploaded.out.split("\n");
    id = /^Uploaded: ([0-9a-f-]{36}) .* \(queued\)\.$/.exec(first as string)?.[1] as string;
    expect(id).toBeDefined();
    expect(last).toMatch(new RegExp(`^${id} ready, [1-9]\\d* chunks$`));

    const again = await cli(["kb", "upload", file]);
    expect(again.out).toMatch(new RegExp(`^Already in the knowledge base \\(same bytes\\): ${id} .*\\(ready, `));

    const listed = await cli(["kb", "list", "--tag", "cli-test"]);
    expect(listed.out.split("\n")).toHaveLength(1);
    expect(listed.out).toMatch(new RegExp(`^${id} +ready +[1-9]\\d* +upload +`));
    const status = await cli(["kb", "status", id]);
    expect(status.out).toMatch(/^title +.+\nstatus +ready, [1-9]\d* chunks\n/);
  });

  it("says what is wrong with an upload", async () => {
    const binary = join(scratch, "photo.md");
    await writeFile(binary, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0xff, 0x00]));
    const refused = await cli(["kb", "upload", binary]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^415 /);
    expect((await cli(["kb", "upload", join(scratch, "missing.pdf")])).err).toContain("cannot read");
    expect((await cli(["kb", "upload", file, "--metadata", "{nope"])).code).toBe(2);
    expect((await cli(["kb", "status", "not-an-id"])).code).toBe(2);
    const unknown = await cli(["kb", "status", "00000000-0000-4000-8000-000000000000"]);
    expect(unknown).toMatchObject({ code: 1, err: expect.stringMatching(/^404 NOT_FOUND: /) });
  });

  it("searches the knowledge base", async () => {
    const found = await cli(["kb", "search", "rewarming", "frostbite", "--top-k", "1"]);
    expect(found.code).toBe(0);
    const [hit, snippet] = found.out.split("\n");
    expect(hit).toMatch(new RegExp(`^1\\. [01]\\.\\d{3}  .*\\(${id}\\)$`));
    expect(snippet).toContain("rewarming");
    expect((await cli(["kb", "search", "x", "--mode", "psychic"])).code).toBe(2);
  });

  it("ask streams the answer as it is written, then its sources", async () => {
    const asked = await cli(["ask", "How", "is", "frostbite", "treated?"]);
    expect(asked.err).toBe("");
    expect(asked.code).toBe(0);
    expect(asked.writes.length).toBeGreaterThan(3); // word by word, not the whole answer at the end
    expect(asked.writes.join("")).toContain("rewarming");
    expect(asked.out).toMatch(new RegExp(`^\\nSources:\\n\\[1\\] .+ \\(${id}\\)`));
    expect((await cli(["ask"])).code).toBe(2);
  });
});

describe("timeouts", () => {
  /** A server that takes the request and says nothing (or only the start of an answer stream). */
  async function silentServer(start?: string) {
    const listener = createHttpServer((_req, res) => {
      if (start === undefined) return;
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(start);
    });
    listener.listen(0, "127.0.0.1");
    await once(listener, "listening");
    const { port } = listener.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      close: () => {
        listener.closeAllConnections();
        listener.close();
      },
    };
  }

  it("end a call the server does not answer (VOICEASSIST_TIMEOUT_SECONDS)", async () => {
    const silent = await silentServer();
    try {
      const run = io("", { VOICEASSIST_TOKEN: "t", VOICEASSIST_TIMEOUT_SECONDS: "0.5" });
      expect(await runCli(["users", "list", "--url", silent.url], run.io)).toBe(1);
      expect(run.err.join("\n")).toBe(`Could not reach ${silent.url}: no answer within 0.5 s`);
    } finally {
      silent.close();
    }
  });

  it("end an answer stream that stops", async () => {
    const stalled = await silentServer('event: delta\ndata: {"text":"Frostbite is "}\n\n');
    try {
      const run = io("", { VOICEASSIST_TOKEN: "t", VOICEASSIST_TIMEOUT_SECONDS: "0.5" });
      expect(await runCli(["ask", "How is frostbite treated?", "--url", stalled.url], run.io)).toBe(1);
      expect(run.writes.join("")).toBe("Frostbite is \n"); // the line ended before the error
      expect(run.err.join("\n")).toBe(`Could not reach ${stalled.url}: no answer within 0.5 s`);
    } finally {
      stalled.close();
    }
  });
});
