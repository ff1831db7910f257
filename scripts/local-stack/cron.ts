// The local cron driver: `wrangler dev` never fires the crons of wrangler.toml [triggers] by itself, so
// scripts/dev.ts runs this file as its own process (`node scripts/local-stack/cron.ts <app url> <wrangler.toml>`).
// At each minute boundary (+1 s) it calls the Worker's scheduled handler, once per cron matching that minute,
// through the route wrangler dev serves for it: GET /cdn-cgi/local/scheduled?cron=<expr>&time=<ms> (scheduledTime
// is the minute boundary, as in production). Every call has a timeout; a failure is one log line, never a crash.
// A process of its own, not a timer inside dev.ts: crons keep firing while dev.ts (which serves the database in
// embedded mode) is stopped, as the outage test does with SIGSTOP.
import { readFileSync, realpathSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

const MINUTE_MS = 60_000;
/** How long after the minute boundary the crons of that minute are called. */
export const FIRE_DELAY_MS = 1_000;
/** Per call; under a minute, so calls never pile up. */
const CALL_TIMEOUT_MS = 50_000;
/** Minutes missed (a stopped or starved process) are caught up to this many; older ones are skipped. */
const MAX_CATCH_UP_MINUTES = 5;

export const SCHEDULED_PATH = "/cdn-cgi/local/scheduled";

/** One field of a 5-field cron expression: the values it allows. */
type Field = ReadonlySet<number>;

export interface CronSchedule {
  expression: string;
  /** Whether the cron fires at the minute of `date` (UTC, as Cloudflare's crons). */
  matches(date: Date): boolean;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
}

const FIELDS: readonly FieldSpec[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12 },
  { name: "day of week", min: 0, max: 7 },
];

function parseNumber(text: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new Error(`${name}: "${text}" is not a number`);
  const value = Number(text);
  if (value < min || value > max) throw new Error(`${name}: ${value} is outside ${min}-${max}`);
  return value;
}

/** `*`, `*\/n`, `a`, `a-b`, `a-b/n` and comma-separated lists of those. */
function parseField(text: string, { name, min, max }: FieldSpec): Field | null {
  if (name === "day of week") {
    // Cloudflare numbers days of the week 1-7 from Sunday, Unix cron 0-7: not guessed here.
    if (text !== "*") throw new Error(`${name}: only * is supported by the local cron driver, got "${text}"`);
    return null;
  }
  if (text === "*") return null;
  const values = new Set<number>();
  for (const part of text.split(",")) {
    const [range = "", stepText, extra] = part.split("/");
    if (extra !== undefined || range === "") throw new Error(`${name}: "${part}" is not a value, range or step`);
    const step = stepText === undefined ? 1 : parseNumber(stepText, name, 1, max);
    let from: number;
    let to: number;
    if (range === "*") [from, to] = [min, max];
    else if (range.includes("-")) {
      const [a = "", b = "", more] = range.split("-");
      if (more !== undefined) throw new Error(`${name}: "${range}" is not a range`);
      from = parseNumber(a, name, min, max);
      to = parseNumber(b, name, min, max);
      if (from > to) throw new Error(`${name}: range "${range}" runs backwards`);
    } else {
      from = parseNumber(range, name, min, max);
      // `a/n` means a, a+n, ... up to the maximum, as in Vixie cron.
      to = stepText === undefined ? from : max;
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

/**
 * Parses a 5-field cron expression (minute hour day-of-month month day-of-week): `*`, `*\/n`, numbers, ranges,
 * `a-b/n` and lists; day of week only `*`; no names, no L, W or #. Throws on anything else.
 */
export function parseCron(expression: string): CronSchedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`"${expression}": a cron has 5 fields, this one ${parts.length}`);
  let fields: (Field | null)[];
  try {
    fields = FIELDS.map((spec, i) => parseField(parts[i] ?? "", spec));
  } catch (error) {
    throw new Error(`"${expression}": ${(error as Error).message}`);
  }
  const [minute = null, hour = null, day = null, month = null] = fields;
  const allows = (field: Field | null, value: number) => field === null || field.has(value);
  return {
    expression,
    matches: (date) =>
      allows(minute, date.getUTCMinutes()) &&
      allows(hour, date.getUTCHours()) &&
      allows(day, date.getUTCDate()) &&
      allows(month, date.getUTCMonth() + 1),
  };
}

/** The crons of `[triggers] crons = [...]` in a wrangler.toml (one line or several); [] when there are none. */
export function cronsOfWranglerToml(toml: string): string[] {
  const lines = toml.split("\n");
  const start = lines.findIndex((line) => line.trim() === "[triggers]");
  if (start === -1) return [];
  let table = "";
  for (const line of lines.slice(start + 1)) {
    if (/^\s*\[/.test(line)) break;
    table += `${line.replace(/#.*$/, "")}\n`;
  }
  const list = /(?:^|\n)\s*crons\s*=\s*\[([^\]]*)\]/.exec(table);
  if (!list) return [];
  return [...(list[1] ?? "").matchAll(/"([^"]*)"|'([^']*)'/g)].map((m) => m[1] ?? m[2] ?? "");
}

/** One GET with a timeout; accepts wrangler's self-signed certificate (--https). Resolves to status and body. */
function get(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(
      url,
      { method: "GET", timeout: timeoutMs, rejectUnauthorized: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("error", reject);
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

export interface CronDriverOptions {
  /** The app's origin, e.g. http://127.0.0.1:8787. */
  url: string;
  crons: readonly string[];
  log?: (line: string) => void;
  callTimeoutMs?: number;
  now?: () => number;
}

/** Calls the scheduled handler of every cron matching one minute; one log line per failure. */
export async function fireMinute(options: CronDriverOptions, schedules: CronSchedule[], minuteMs: number) {
  const log = options.log ?? console.error;
  const due = schedules.filter((s) => s.matches(new Date(minuteMs)));
  await Promise.all(
    due.map(async ({ expression }) => {
      const target = `${options.url}${SCHEDULED_PATH}?cron=${encodeURIComponent(expression)}&time=${minuteMs}`;
      try {
        const res = await get(target, options.callTimeoutMs ?? CALL_TIMEOUT_MS);
        if (res.status !== 200) log(`cron "${expression}": ${res.status} ${res.body.slice(0, 200).trim()}`);
      } catch (error) {
        log(`cron "${expression}": ${(error as Error).message}`);
      }
    }),
  );
}

/** Fires the crons at each minute boundary + FIRE_DELAY_MS until stop(). Invalid crons are logged and skipped. */
export function startCronDriver(options: CronDriverOptions): { stop(): void } {
  const log = options.log ?? console.error;
  const now = options.now ?? Date.now;
  const schedules: CronSchedule[] = [];
  for (const expression of options.crons) {
    try {
      schedules.push(parseCron(expression));
    } catch (error) {
      log(`cron driver: skipping ${(error as Error).message}`);
    }
  }
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // The next minute to fire: the one after now (a minute already begun is not fired late at start).
  let next = (Math.floor(now() / MINUTE_MS) + 1) * MINUTE_MS;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(tick, Math.max(0, next + FIRE_DELAY_MS - now()));
  };
  const tick = () => {
    const current = Math.floor((now() - FIRE_DELAY_MS) / MINUTE_MS) * MINUTE_MS;
    if (current - next > MAX_CATCH_UP_MINUTES * MINUTE_MS) {
      log(`cron driver: ${(current - next) / MINUTE_MS} minutes behind, skipping to the current one`);
      next = current;
    }
    // Each due minute once, in order, without waiting for the calls: a slow handler never delays the next minute.
    while (next <= current) {
      void fireMinute(options, schedules, next);
      next += MINUTE_MS;
    }
    schedule();
  };
  schedule();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

// Run as a program by scripts/dev.ts. Compared by real path: the entry point may be reached through a symlink.
const entry = process.argv[1];
if (entry && realpathSync(entry) === import.meta.filename) {
  const [url, tomlPath] = process.argv.slice(2);
  if (!url || !tomlPath) {
    console.error("usage: node scripts/local-stack/cron.ts <app url> <wrangler.toml>");
    process.exit(2);
  }
  const crons = cronsOfWranglerToml(readFileSync(tomlPath, "utf8"));
  const driver = startCronDriver({ url, crons });
  const parent = process.ppid;
  // Ends with the process that started it, even if that one could not stop it (SIGKILL): then ppid changes.
  const watch = setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1_000);
  const stop = () => {
    driver.stop();
    clearInterval(watch);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
