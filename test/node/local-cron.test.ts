// The local cron driver of `npm run dev` (scripts/local-stack/cron.ts): its cron matcher, its reading of
// wrangler.toml [triggers], and the calls it makes at a minute boundary (against a local HTTP receiver).
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cronsOfWranglerToml, fireMinute, parseCron, SCHEDULED_PATH } from "../../scripts/local-stack/cron.ts";

const read = (path: string) => readFileSync(join(import.meta.dirname, "../..", path), "utf8");
// The cron keys of the Worker's job table (src/jobs/schedule.ts imports workerd modules: read as text here).
const jobTableCrons = [...read("src/jobs/schedule.ts").matchAll(/^ {2}"([^"]+)": \{$/gm)].map((m) => m[1]);

const at = (iso: string) => new Date(`${iso}Z`);
const minutesOfHour = (expression: string) => {
  const cron = parseCron(expression);
  return Array.from({ length: 60 }, (_, m) => m).filter((m) =>
    cron.matches(at(`2026-03-04T10:${String(m).padStart(2, "0")}:00`)),
  );
};

describe("parseCron", () => {
  it("matches every minute for * * * * *", () => {
    expect(minutesOfHour("* * * * *")).toHaveLength(60);
  });

  it("supports steps, numbers, lists and ranges", () => {
    expect(minutesOfHour("*/5 * * * *")).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]);
    expect(minutesOfHour("7 * * * *")).toEqual([7]);
    expect(minutesOfHour("1,2,30 * * * *")).toEqual([1, 2, 30]);
    expect(minutesOfHour("10-13 * * * *")).toEqual([10, 11, 12, 13]);
    expect(minutesOfHour("10-20/5,59 * * * *")).toEqual([10, 15, 20, 59]);
    expect(minutesOfHour("50/3 * * * *")).toEqual([50, 53, 56, 59]);
  });

  it("reads hours, days of the month and months in UTC", () => {
    const daily = parseCron("30 3 * * *");
    expect(daily.matches(at("2026-03-04T03:30:00"))).toBe(true);
    expect(daily.matches(at("2026-03-04T03:31:00"))).toBe(false);
    expect(daily.matches(at("2026-03-04T04:30:00"))).toBe(false);
    const monthly = parseCron("0 0 1 1-6 *");
    expect(monthly.matches(at("2026-06-01T00:00:00"))).toBe(true);
    expect(monthly.matches(at("2026-07-01T00:00:00"))).toBe(false);
    expect(monthly.matches(at("2026-06-02T00:00:00"))).toBe(false);
  });

  it("rejects what it does not support, with the reason", () => {
    expect(() => parseCron("* * * *")).toThrow(/5 fields/);
    expect(() => parseCron("60 * * * *")).toThrow(/outside 0-59/);
    expect(() => parseCron("* 24 * * *")).toThrow(/outside 0-23/);
    expect(() => parseCron("* * 0 * *")).toThrow(/outside 1-31/);
    expect(() => parseCron("*/0 * * * *")).toThrow(/outside/);
    expect(() => parseCron("5-1 * * * *")).toThrow(/backwards/);
    expect(() => parseCron("a * * * *")).toThrow(/not a number/);
    expect(() => parseCron("* * * JAN *")).toThrow(/not a number/);
    expect(() => parseCron("* * L * *")).toThrow(/not a number/);
    // Cloudflare numbers weekdays from 1 = Sunday, Unix cron from 0: the driver does not guess.
    expect(() => parseCron("* * * * 1")).toThrow(/only \*/);
  });
});

describe("cronsOfWranglerToml", () => {
  it("reads the project's [triggers], the crons the Worker's job table is keyed by", () => {
    const crons = cronsOfWranglerToml(read("wrangler.toml"));
    expect(crons.length).toBeGreaterThan(0);
    expect(crons.sort()).toEqual(jobTableCrons.sort());
    for (const cron of crons) expect(() => parseCron(cron)).not.toThrow();
  });

  it("reads lists over several lines, with comments, and nothing without [triggers]", () => {
    const toml = [
      'name = "x"',
      "[triggers]",
      "crons = [",
      '  "* * * * *", # every minute',
      "  '*/5 * * * *',",
      "]",
      "[vars]",
      'crons = ["1 1 * * *"]',
    ].join("\n");
    expect(cronsOfWranglerToml(toml)).toEqual(["* * * * *", "*/5 * * * *"]);
    expect(cronsOfWranglerToml('[vars]\ncrons = ["1 1 * * *"]\n')).toEqual([]);
  });
});

describe("fireMinute", () => {
  let server: Server;
  let url = "";
  const calls: URL[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      const called = new URL(req.url ?? "/", "http://x");
      calls.push(called);
      if (called.searchParams.get("cron") === "*/5 * * * *") {
        res.writeHead(500).end("exception");
        return;
      }
      if (called.searchParams.get("cron") === "30 * * * *") return; // never answers
      res.writeHead(200).end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("calls the scheduled route once per matching cron with the minute as scheduledTime; failures are one line", async () => {
    const crons = ["* * * * *", "*/5 * * * *", "30 * * * *", "31 * * * *"];
    const schedules = crons.map(parseCron);
    const lines: string[] = [];
    const minute = at("2026-03-04T10:30:00").getTime();
    await fireMinute({ url, crons, log: (line) => lines.push(line), callTimeoutMs: 500 }, schedules, minute);
    expect(calls.map((c) => c.pathname)).toEqual([SCHEDULED_PATH, SCHEDULED_PATH, SCHEDULED_PATH]);
    expect(calls.map((c) => c.searchParams.get("cron")).sort()).toEqual(["* * * * *", "*/5 * * * *", "30 * * * *"]);
    for (const call of calls) expect(call.searchParams.get("time")).toBe(String(minute));
    expect(lines.sort()).toEqual(['cron "*/5 * * * *": 500 exception', 'cron "30 * * * *": no answer within 500 ms']);
  });

  it("logs an unreachable Worker without throwing", async () => {
    const lines: string[] = [];
    await fireMinute(
      { url: "http://127.0.0.1:1", crons: ["* * * * *"], log: (line) => lines.push(line) },
      [parseCron("* * * * *")],
      Date.now(),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^cron "\* \* \* \* \*": .*ECONNREFUSED/);
  });
});
