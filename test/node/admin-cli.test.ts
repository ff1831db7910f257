import { execFile } from "node:child_process";
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
