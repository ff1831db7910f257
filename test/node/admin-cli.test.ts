import { execFile } from "node:child_process";
import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Unstable_DevWorker, unstable_dev } from "wrangler";
import { runCli } from "../../scripts/admin/cli.ts";
import { runMigrations } from "../../scripts/db/migrate.ts";
import { type LocalStack, startLocalStack } from "../../scripts/local-stack/index.ts";

const ROOT = join(import.meta.dirname, "../..");
const TOKEN = "cli-test-bootstrap-token-0123456789";
const PASSWORD = "Granite-Harbour-Lantern-42";

let stack: LocalStack;
let worker: Unstable_DevWorker;
let url: string;

// The whole path a real operator takes: the CLI over HTTP to the Worker in workerd, on a fresh database.
beforeAll(async () => {
  stack = await startLocalStack({ redisUrl: "redis://127.0.0.1:1" });
  await runMigrations(stack.env.DATABASE_URL as string, stack.env.NEON_LOCAL_PROXY);
  worker = await unstable_dev(join(ROOT, "src/index.ts"), {
    config: join(ROOT, "wrangler.toml"),
    ip: "127.0.0.1",
    persist: false,
    logLevel: "error",
    vars: {
      ...stack.env,
      ENVIRONMENT: "test",
      LOG_LEVEL: "error",
      ADMIN_BOOTSTRAP_TOKEN: TOKEN,
      JWT_SIGNING_KEYS: "cli:cli-test-signing-secret-0123456789abcdef",
    },
    experimental: { disableExperimentalWarning: true },
  });
  url = `http://${worker.address}:${worker.port}`;
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await stack?.stop();
});

function io(stdin: string, env: NodeJS.ProcessEnv = { ADMIN_BOOTSTRAP_TOKEN: TOKEN }) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { env, readStdin: async () => stdin, out: (l: string) => out.push(l), err: (l: string) => err.push(l) },
  };
}

describe("npm run admin -- bootstrap", () => {
  it("explains usage and refuses missing options", async () => {
    const run = io("");
    expect(await runCli(["bootstrap", "--email", "a@b.test"], run.io)).toBe(2);
    expect(run.err.join("\n")).toContain("--name");
    expect(await runCli(["nonsense"], io("").io)).toBe(2);
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

    const login = await fetch(`${url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "first@example.test", password: PASSWORD }),
    });
    expect(((await login.json()) as { user: { role: string } }).user.role).toBe("admin");

    // The real command, as an operator types it, with the password on standard input. Asynchronous:
    // the local stack serving the Worker's database lives in this process.
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

  const login = () =>
    fetch(`${url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "first@example.test", password: PASSWORD }),
    });

  beforeAll(async () => {
    // The admin the bootstrap tests created (created here when they were filtered out).
    let res = await login();
    if (res.status !== 200) {
      await fetch(`${url}/api/admin/bootstrap`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ email: "first@example.test", password: PASSWORD, full_name: "First" }),
      });
      res = await login();
    }
    const accessToken = ((await res.json()) as { access_token: string }).access_token;
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
    const server = createServer().listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
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
  });
});
