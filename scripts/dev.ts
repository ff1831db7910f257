// npm run dev [-- --reset] [--https] [-- <wrangler dev options>]
// Starts the local stack (PGlite or DATABASE_URL, the Neon proxy, the Upstash server when Redis answers),
// applies migrations, validates the Worker's variables and runs `wrangler dev` in its own process group, and the
// cron driver (local-stack/cron.ts: wrangler dev fires no [triggers] crons) in another.
// One Ctrl-C stops the cron driver, wrangler (and workerd), then the stack.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { configVariableNames, parseConfig } from "../src/config.ts";
import { runMigrations } from "./db/migrate.ts";
import { type LocalStack, startLocalStack } from "./local-stack/index.ts";

const ROOT = join(import.meta.dirname, "..");
const DATA_DIR = join(ROOT, ".data");
const ENV_FILE = join(ROOT, ".wrangler", "dev.vars.env");
const CRON_DRIVER = join(ROOT, "scripts", "local-stack", "cron.ts");
const WRANGLER_BIN = join(
  dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
  "bin",
  "wrangler.js",
);
// How long wrangler and workerd get to exit on SIGTERM before SIGKILL.
const STOP_GRACE_MS = 5_000;

const USAGE = `usage: npm run dev -- [--reset] [--https] [-- <wrangler dev options>]
  --reset   wipe local data (.data/) first
  --https   serve https with wrangler's self-signed certificate`;

interface DevOptions {
  reset: boolean;
  https: boolean;
  wranglerArgs: string[];
}

function parseArgs(argv: string[]): DevOptions {
  const separator = argv.indexOf("--");
  const own = separator === -1 ? argv : argv.slice(0, separator);
  const options: DevOptions = {
    reset: false,
    https: false,
    wranglerArgs: separator === -1 ? [] : argv.slice(separator + 1),
  };
  for (const arg of own) {
    if (arg === "--reset") options.reset = true;
    else if (arg === "--https") options.https = true;
    else if (arg === "--help" || arg === "-h") exitWith(0, USAGE);
    else exitWith(2, `unknown option ${arg} (wrangler options go after --)\n${USAGE}`);
  }
  return options;
}

function appPort(): number {
  const port = Number(process.env.PORT ?? "8787");
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    exitWith(2, `PORT must be a port number, got "${process.env.PORT}"`);
  }
  return port;
}

/** Local defaults < the stack's variables < every configuration variable set in the environment. */
function workerVariables(
  stack: LocalStack,
  operatorToken: string,
  signingKeys: string,
  appUrl: string,
): Record<string, string> {
  const fromEnvironment: Record<string, string> = {};
  for (const name of configVariableNames) {
    const value = process.env[name];
    // Empty counts as unset, as in the Worker's own configuration.
    if (value) fromEnvironment[name] = value;
  }
  return {
    ENVIRONMENT: "development",
    LOG_LEVEL: "debug",
    // The web client's dev server, and the app's own origin (as PORT and --https make it) under both names.
    CORS_ORIGINS: ["http://localhost:5173", appUrl, appUrl.replace("//127.0.0.1:", "//localhost:")].join(","),
    OPERATOR_TOKEN: operatorToken,
    JWT_SIGNING_KEYS: signingKeys,
    ...stack.env,
    ...fromEnvironment,
  };
}

/** Writes variables as a dotenv file that wrangler reads back unchanged (it expands `$`, so escape it). */
async function writeEnvFile(variables: Record<string, string>): Promise<void> {
  const lines = Object.entries(variables).map(([name, value]) => {
    const escaped = value.replaceAll("$", "\\$");
    const quote = ["'", '"', "`"].find((q) => !escaped.includes(q));
    if (!quote) throw new Error(`${name} contains ', " and \` at once: it cannot be written to an env file`);
    return `${name}=${quote}${escaped}${quote}`;
  });
  await mkdir(dirname(ENV_FILE), { recursive: true });
  await writeFile(ENV_FILE, `${lines.join("\n")}\n`, { mode: 0o600 });
  await chmod(ENV_FILE, 0o600);
}

function startWrangler(options: DevOptions, port: number): ChildProcess {
  const args = [WRANGLER_BIN, "dev", "--ip", "127.0.0.1", "--port", String(port), "--env-file", ENV_FILE];
  args.push("--persist-to", join(DATA_DIR, "wrangler"), "--show-interactive-dev-session=false");
  if (options.https) args.push("--local-protocol", "https");
  args.push(...options.wranglerArgs);
  return spawn(process.execPath, args, {
    cwd: ROOT,
    // Its own process group, so one signal reaches wrangler and the workerd it starts.
    detached: true,
    // No stdin: a background process group reading the terminal would be stopped (SIGTTIN).
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
}

/** The cron driver, in its own process: it keeps firing crons even while this process is stopped. */
function startCronDriver(appUrl: string): ChildProcess {
  return spawn(process.execPath, [CRON_DRIVER, appUrl, join(ROOT, "wrangler.toml")], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
  });
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the whole process group, SIGKILL to whatever is left after the grace period. */
async function killGroup(pgid: number): Promise<void> {
  if (!groupAlive(pgid)) return;
  process.kill(-pgid, "SIGTERM");
  const deadline = Date.now() + STOP_GRACE_MS;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
  if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
}

/** generatedOperatorToken is undefined when the token comes from the environment (it is not printed then). */
function printSummary(stack: LocalStack, appUrl: string, generatedOperatorToken: string | undefined): void {
  const operator = generatedOperatorToken ? `token ${generatedOperatorToken}` : "token from OPERATOR_TOKEN";
  const lines = [
    "",
    "VoiceAssist Edge: local development",
    `  App          ${appUrl}`,
    ...stack.summary.map((line) => `  ${line}`),
    `  Operator     ${operator} (for /health/detailed and /metrics)`,
    `  Wrangler     state (KV, R2, queues, Durable Objects) in ${join(DATA_DIR, "wrangler")}`,
    "  Crons        wrangler.toml [triggers], fired each minute (+1 s) by scripts/local-stack/cron.ts",
    `  Variables    ${relative(ROOT, ENV_FILE)} (removed on exit)`,
    ...stack.notices.map((notice) => `  ! ${notice}`),
    "",
  ];
  console.log(lines.join("\n"));
}

function exitWith(code: number, message: string): never {
  (code === 0 ? console.log : console.error)(message);
  process.exit(code);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const port = appPort();
  if (options.reset) {
    await rm(DATA_DIR, { recursive: true, force: true });
    console.log(`Wiped ${DATA_DIR}`);
  }

  let stack: LocalStack | undefined;
  let wrangler: ChildProcess | undefined;
  let cronDriver: ChildProcess | undefined;
  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    if (cronDriver?.pid) await killGroup(cronDriver.pid);
    if (wrangler?.pid) await killGroup(wrangler.pid);
    await stack?.stop();
    await rm(ENV_FILE, { force: true });
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(130));
  process.on("SIGTERM", () => void shutdown(143));

  const databaseUrl = process.env.DATABASE_URL || undefined;
  try {
    stack = await startLocalStack({
      databaseUrl,
      dataDir: databaseUrl ? undefined : join(DATA_DIR, "pglite"),
      redisUrl: process.env.REDIS_URL || undefined,
      // Chaos experiments only (docs/chaos.md); unset by default.
      faultControlPort: process.env.LOCAL_FAULT_PROXY_PORT ? Number(process.env.LOCAL_FAULT_PROXY_PORT) : undefined,
    });
  } catch (error) {
    exitWith(1, `The local stack did not start: ${(error as Error).message}`);
  }

  const operatorToken = randomBytes(24).toString("base64url");
  const appUrl = `${options.https ? "https" : "http"}://127.0.0.1:${port}`;
  const variables = workerVariables(stack, operatorToken, await devSigningKeys(), appUrl);
  const config = parseConfig(variables);
  if (!config.ok) {
    console.error("The Worker's configuration is invalid:");
    for (const issue of config.issues) console.error(`  ${issue.variable} ${issue.message}`);
    return shutdown(1);
  }

  try {
    await runMigrations(stack.env.DATABASE_URL!, stack.env.NEON_LOCAL_PROXY);
  } catch (error) {
    console.error(`Migrations failed: ${(error as Error).message}`);
    return shutdown(1);
  }

  await writeEnvFile(variables);
  printSummary(stack, appUrl, process.env.OPERATOR_TOKEN ? undefined : operatorToken);
  wrangler = startWrangler(options, port);
  wrangler.on("error", (error) => {
    console.error(`wrangler did not start: ${error.message}`);
    void shutdown(1);
  });
  wrangler.on("exit", (code, signal) => {
    if (shuttingDown) return;
    console.error(`wrangler exited (${signal ?? `code ${code}`}); stopping the local stack.`);
    void shutdown(code ?? 1);
  });
  cronDriver = startCronDriver(appUrl);
  cronDriver.on("error", (error) => console.error(`the cron driver did not start: ${error.message}`));
}

/** A JWT signing key kept in .data/, so sessions survive a restart of npm run dev (not --reset). */
async function devSigningKeys(): Promise<string> {
  const file = join(DATA_DIR, "dev-signing-key");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    const keys = `dev-1:${randomBytes(32).toString("base64url")}`;
    await mkdir(DATA_DIR, { recursive: true });
    await writeFile(file, keys, { mode: 0o600 });
    return keys;
  }
}

await main();
