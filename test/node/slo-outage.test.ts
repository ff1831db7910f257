// Issue 14 §2: a full api-availability outage under steady traffic pages within 2 minutes, and the alert resolves
// within 10 minutes after recovery, on a running `npm run dev` with real clocks: the cron driver of dev.ts
// (scripts/local-stack/cron.ts) fires the every-minute SLO evaluation, PagerDuty and the webhook are played by
// an HTTP receiver of this test on 127.0.0.1. The outage: SIGSTOP of the dev.ts process, which serves the
// database in embedded mode (PGlite and the Neon proxy); wrangler, workerd and the cron driver are other
// processes and keep running, so signed-in requests keep arriving and fail (5xx) once the database's query
// timeout (15 s, src/db/client.ts) passes. SIGCONT once the page has arrived.
//
// Timing is by nature (windows of whole minutes): the page comes at the first evaluation after the first minute
// holding errors, the resolve when the 5-minute window no longer does; about 10 minutes of wall time in all.
// The only bounds asserted are the requirement's own (120 s from SIGSTOP, 600 s from SIGCONT).
//
// Skipped when TEST_DATABASE_URL is set: CI runs the whole suite twice, and this test needs the embedded
// database (served inside dev.ts, so SIGSTOP stops it), i.e. the first run, on the embedded defaults.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from "../../src/ops/notify/signature.ts";
import { type DevServer, insecureRequest, registerUser, startDevServer, withDevLog } from "./dev-server.ts";

const PAGE_DEDUP_KEY = "voiceassist/api-availability/page";
const ROUTING_KEY = `outage-test-${randomUUID().replaceAll("-", "")}`;
const WEBHOOK_SECRET = `outage-test-secret-${randomUUID()}`;
/** The requirement: page within 2 minutes of the outage, resolve within 10 minutes of recovery. */
const PAGE_WITHIN_MS = 120_000;
const RESOLVE_WITHIN_MS = 600_000;
/** Steady traffic: one request every 200 ms, not waiting for answers; each with this client timeout. */
const TRAFFIC_INTERVAL_MS = 200;
const CLIENT_TIMEOUT_MS = 60_000;
const MIN_OUTAGE_MS = 45_000;

interface Received {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies, asserted field by field
  body: any;
}

interface Sample {
  sentAt: number;
  answeredAt?: number;
  status?: number;
  error?: string;
}

const skip = Boolean(process.env.TEST_DATABASE_URL);

describe.skipIf(skip)("api-availability outage on npm run dev (SIGSTOP of the embedded database)", () => {
  let receiver: Server | undefined;
  const received: Received[] = [];
  let server: DevServer | undefined;
  let traffic: NodeJS.Timeout | undefined;
  const samples: Sample[] = [];
  let stoppedPid: number | undefined;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          body = undefined;
        }
        received.push({ at: Date.now(), path: req.url ?? "", headers: req.headers, raw, body });
        if (req.url?.startsWith("/pagerduty/")) {
          res.writeHead(202, { "content-type": "application/json" });
          res.end(JSON.stringify({ status: "success", message: "Event processed" }));
        } else res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver?.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
    server = await startDevServer({
      https: false,
      variables: {
        PAGERDUTY_EVENTS_URL: `${base}/pagerduty/v2/enqueue`,
        PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
        ALERT_WEBHOOK_URL: `${base}/alerts/webhook`,
        ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET,
        // The test runs about 12 minutes on one sign-in (the default access token lives 15).
        ACCESS_TOKEN_TTL_SECONDS: "3600",
      },
    });
  }, 300_000);

  afterAll(async () => {
    clearInterval(traffic);
    // Never leave the stack stopped: dev.ts must handle SIGTERM in stop().
    if (stoppedPid !== undefined) {
      try {
        process.kill(stoppedPid, "SIGCONT");
      } catch {
        // Gone.
      }
    }
    await server?.stop();
    receiver?.closeAllConnections();
    await new Promise((resolve) => receiver?.close(resolve));
  }, 120_000);

  const pagerDuty = (action: string) =>
    received.filter(
      (r) =>
        r.path === "/pagerduty/v2/enqueue" && r.body?.dedup_key === PAGE_DEDUP_KEY && r.body?.event_action === action,
    );

  async function waitFor<T>(find: () => T | undefined, ms: number): Promise<T | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = find();
      if (found !== undefined || Date.now() > deadline) return found;
      await sleep(250);
    }
  }

  it(
    "pages within 2 minutes of the database stopping and resolves within 10 minutes of it coming back",
    async () => {
      const dev = server as DevServer;
      const { token } = await withDevLog(dev, () => registerUser(dev, `outage-${randomUUID()}@example.com`));

      traffic = setInterval(() => {
        const sample: Sample = { sentAt: Date.now() };
        samples.push(sample);
        insecureRequest(`${dev.url}/api/auth/me`, {
          headers: { authorization: `Bearer ${token}` },
          timeoutMs: CLIENT_TIMEOUT_MS,
        }).then(
          (res) => {
            sample.answeredAt = Date.now();
            sample.status = res.status;
          },
          (error: Error) => {
            sample.answeredAt = Date.now();
            sample.error = error.message;
          },
        );
      }, TRAFFIC_INTERVAL_MS);

      // Steady state first: traffic answered 200 (at least 10 answers, all 200).
      const warm = await waitFor(
        () => (samples.filter((s) => s.status === 200).length >= 10 ? true : undefined),
        60_000,
      );
      expect(warm, `no steady traffic:\n${dev.log().slice(-4_000)}`).toBe(true);
      expect(samples.filter((s) => s.answeredAt !== undefined && s.status !== 200)).toEqual([]);
      expect(received.filter((r) => r.path.startsWith("/pagerduty/"))).toEqual([]);

      // The outage.
      stoppedPid = dev.devScriptPid;
      process.kill(stoppedPid, "SIGSTOP");
      const stoppedAt = Date.now();

      const trigger = await waitFor(() => pagerDuty("trigger")[0], PAGE_WITHIN_MS + 60_000);
      const pagedAt = trigger?.at;
      console.log(
        `slo-outage: SIGSTOP at ${new Date(stoppedAt).toISOString()}, page at ${pagedAt ? new Date(pagedAt).toISOString() : "-"}: ${JSON.stringify(trigger?.body?.payload)}`,
      );
      // Recovery, as soon as the page is in (or the bound has passed without it), but not before the outage has
      // lasted MIN_OUTAGE_MS: a page can come within seconds (SIGSTOP late in a minute that the errors then
      // dominate), and the 5xx answers of the outage are checked below.
      await sleep(Math.max(0, stoppedAt + MIN_OUTAGE_MS - Date.now()));
      process.kill(stoppedPid, "SIGCONT");
      const resumedAt = Date.now();
      stoppedPid = undefined;

      expect(
        trigger,
        `no page within ${(PAGE_WITHIN_MS + 60_000) / 1000} s:\n${dev.log().slice(-6_000)}`,
      ).toBeDefined();
      const timeToPageMs = (pagedAt as number) - stoppedAt;
      expect(timeToPageMs).toBeLessThanOrEqual(PAGE_WITHIN_MS);
      expect(trigger?.body).toMatchObject({
        routing_key: ROUTING_KEY,
        event_action: "trigger",
        dedup_key: PAGE_DEDUP_KEY,
        payload: { severity: "critical" },
      });

      // While the database was stopped the API answered 5xx, after the database's own timeout: every request sent
      // from 1 s after SIGSTOP until 20 s before SIGCONT (so that it did not meet the recovered database) that got
      // an answer got a 5xx, and answers came.
      const during = samples.filter((s) => s.sentAt >= stoppedAt + 1_000 && s.sentAt <= resumedAt - 20_000);
      const answered = during.filter((s) => s.status !== undefined);
      expect(answered.length).toBeGreaterThan(0);
      expect(answered.filter((s) => (s.status as number) < 500)).toEqual([]);
      const latencies = answered.map((s) => (s.answeredAt as number) - s.sentAt).sort((a, b) => a - b);

      const resolve = await waitFor(() => pagerDuty("resolve")[0], RESOLVE_WITHIN_MS + 60_000);
      expect(
        resolve,
        `no resolve within ${(RESOLVE_WITHIN_MS + 60_000) / 1000} s:\n${dev.log().slice(-6_000)}`,
      ).toBeDefined();
      const timeToResolveMs = (resolve?.at as number) - resumedAt;
      expect(timeToResolveMs).toBeLessThanOrEqual(RESOLVE_WITHIN_MS);
      expect(resolve?.body).toMatchObject({ routing_key: ROUTING_KEY, event_action: "resolve" });
      expect(pagerDuty("trigger")).toHaveLength(1);

      // Traffic recovered: the last requests answered 200.
      const recent = samples.filter((s) => s.status !== undefined && s.sentAt >= (resolve?.at as number) - 30_000);
      expect(recent.length).toBeGreaterThan(0);
      expect(recent.filter((s) => s.status !== 200)).toEqual([]);

      // The webhook (tickets, with this routing) got signed deliveries that verify.
      const webhooks = received.filter((r) => r.path === "/alerts/webhook");
      expect(webhooks.length).toBeGreaterThan(0);
      for (const hook of webhooks) {
        const header = hook.headers[WEBHOOK_SIGNATURE_HEADER.toLowerCase()] as string | undefined;
        expect(await verifyWebhookSignature(WEBHOOK_SECRET, header, hook.raw, Math.floor(hook.at / 1000))).toBe(true);
        expect(await verifyWebhookSignature("another-secret", header, hook.raw, Math.floor(hook.at / 1000))).toBe(
          false,
        );
      }

      const p50 = latencies[Math.floor(latencies.length / 2)] ?? 0;
      const max = latencies[latencies.length - 1] ?? 0;
      console.log(
        `slo-outage: time to page ${(timeToPageMs / 1000).toFixed(1)} s after SIGSTOP (bound 120 s), time to resolve ` +
          `${(timeToResolveMs / 1000).toFixed(1)} s after SIGCONT (bound 600 s); outage ${((resumedAt - stoppedAt) / 1000).toFixed(1)} s, ` +
          `${answered.length} answers during it, all 5xx, latency p50 ${(p50 / 1000).toFixed(1)} s, ` +
          `max ${(max / 1000).toFixed(1)} s; ${samples.length} requests in all; ` +
          `${webhooks.length} webhook deliveries, signatures verified`,
      );
    },
    20 * 60_000,
  );
});
