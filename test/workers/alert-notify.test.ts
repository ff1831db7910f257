import { afterEach, describe, expect, it, vi } from "vitest";
import { runInWorkContext } from "../../src/observability/context.ts";
import { setLogLevel } from "../../src/observability/log.ts";
import { type Delivery, nextAttemptDelayMs } from "../../src/ops/notify/delivery.ts";
import { type PagerDutyEvent, sendPagerDuty } from "../../src/ops/notify/pagerduty.ts";
import { signatureHeader, verifyWebhookSignature } from "../../src/ops/notify/signature.ts";
import { sendWebhook } from "../../src/ops/notify/webhook.ts";
import { received, stack } from "./harness.ts";

// The two alert notification adapters against real HTTP on loopback: test/receiver.ts records every request
// and answers /status/<code>/... with that status (its body echoes the request) and never answers /hang/...

const ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF";
const SECRET = "whsec-test-secret-0123456789";

/** A fresh path on the receiver answering `status` (so each test finds its own requests). */
const url = (status: number | "hang", name = "v2/enqueue") =>
  `${stack().receiverUrl}/${status === "hang" ? "hang" : `status/${status}`}/${crypto.randomUUID()}/${name}`;

async function requestsTo(target: string) {
  const path = new URL(target).pathname;
  return (await received()).filter((r) => r.path === path);
}

const trigger: PagerDutyEvent = {
  action: "trigger",
  dedupKey: "slo:api-availability:critical",
  summary: "api-availability burning 14.4x its error budget (1 h and 5 min)",
  source: "voiceassist-edge",
  severity: "critical",
  customDetails: { slo: "api-availability", burnRates: { "1h": 20.5, "5m": 31 }, runbook: "https://x.test/rb#a" },
};

const reasonOf = (d: Delivery) => (d.outcome === "delivered" ? "" : d.reason);

afterEach(() => {
  vi.restoreAllMocks();
  setLogLevel("error");
});

describe("sendPagerDuty", () => {
  it("sends a trigger as PagerDuty expects it and reports 202 as delivered", async () => {
    const eventsUrl = url(202);
    expect(await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, trigger)).toEqual({ outcome: "delivered" });
    const [request, ...more] = await requestsTo(eventsUrl);
    expect(more).toHaveLength(0);
    expect(request?.method).toBe("POST");
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(request?.body ?? "")).toEqual({
      routing_key: ROUTING_KEY,
      event_action: "trigger",
      dedup_key: "slo:api-availability:critical",
      payload: {
        summary: "api-availability burning 14.4x its error budget (1 h and 5 min)",
        source: "voiceassist-edge",
        severity: "critical",
        custom_details: {
          slo: "api-availability",
          burnRates: { "1h": 20.5, "5m": 31 },
          runbook: "https://x.test/rb#a",
        },
      },
    });
  });

  it("sends acknowledge and resolve with the routing key, action and dedup key only", async () => {
    for (const action of ["acknowledge", "resolve"] as const) {
      const eventsUrl = url(202);
      const delivery = await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, { ...trigger, action });
      expect(delivery).toEqual({ outcome: "delivered" });
      const [request] = await requestsTo(eventsUrl);
      expect(JSON.parse(request?.body ?? "")).toEqual({
        routing_key: ROUTING_KEY,
        event_action: action,
        dedup_key: "slo:api-availability:critical",
      });
    }
  });

  it("omits custom_details when there are none, and cuts a summary to 1024 characters", async () => {
    const eventsUrl = url(202);
    const { customDetails: _, ...bare } = trigger;
    await sendPagerDuty(
      { eventsUrl, routingKey: ROUTING_KEY },
      { ...bare, severity: "warning", summary: "x".repeat(3000) },
    );
    const [request] = await requestsTo(eventsUrl);
    const body = JSON.parse(request?.body ?? "");
    expect(Object.keys(body.payload).sort()).toEqual(["severity", "source", "summary"]);
    expect(body.payload.severity).toBe("warning");
    expect(body.payload.summary).toHaveLength(1024);
    expect(body.payload.summary).toBe(`${"x".repeat(1023)}…`);
  });

  it("keeps a summary of exactly 1024 characters whole", async () => {
    const eventsUrl = url(202);
    const summary = "y".repeat(1024);
    await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, { ...trigger, summary });
    const [request] = await requestsTo(eventsUrl);
    expect(JSON.parse(request?.body ?? "").payload.summary).toBe(summary);
  });

  it.each([
    [200, { outcome: "delivered" }],
    [202, { outcome: "delivered" }],
    [400, { outcome: "rejected", reason: "HTTP 400" }],
    [403, { outcome: "rejected", reason: "HTTP 403" }],
    [404, { outcome: "rejected", reason: "HTTP 404" }],
    [408, { outcome: "retry", reason: "HTTP 408" }],
    [429, { outcome: "retry", reason: "HTTP 429" }],
    [500, { outcome: "retry", reason: "HTTP 500" }],
    [502, { outcome: "retry", reason: "HTTP 502" }],
    [503, { outcome: "retry", reason: "HTTP 503" }],
  ])("maps HTTP %i to %o, with one request and no retry loop", async (status, expected) => {
    const eventsUrl = url(status);
    const delivery = await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, trigger);
    expect(delivery).toEqual(expected);
    expect(await requestsTo(eventsUrl)).toHaveLength(1);
    // The receiver's answer echoes the request (routing key included): none of it reaches the reason.
    expect(reasonOf(delivery)).not.toContain(ROUTING_KEY);
    expect(reasonOf(delivery)).not.toContain("echo");
  });

  it("gives up on a receiver that does not answer within the timeout: retry", async () => {
    const eventsUrl = url("hang");
    const started = Date.now();
    const delivery = await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, trigger, { timeoutMs: 300 });
    expect(delivery).toEqual({ outcome: "retry", reason: "timed out after 300 ms" });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await requestsTo(eventsUrl)).toHaveLength(1);
  });

  it("reports a refused connection as retry", async () => {
    const delivery = await sendPagerDuty(
      { eventsUrl: "http://127.0.0.1:1/v2/enqueue", routingKey: ROUTING_KEY },
      trigger,
    );
    expect(delivery).toEqual({ outcome: "retry", reason: "connection failed" });
  });

  it("rejects, without sending, what PagerDuty would refuse: no routing key, a bad dedup key, a bad URL", async () => {
    const eventsUrl = url(202);
    expect(await sendPagerDuty({ eventsUrl, routingKey: "" }, trigger)).toEqual({
      outcome: "rejected",
      reason: "no routing key",
    });
    expect(
      await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, { ...trigger, dedupKey: "k".repeat(256) }),
    ).toEqual({
      outcome: "rejected",
      reason: "dedup key must be 1 to 255 characters",
    });
    expect(await sendPagerDuty({ eventsUrl: "not a url", routingKey: ROUTING_KEY }, trigger)).toEqual({
      outcome: "rejected",
      reason: "invalid URL",
    });
    expect(await requestsTo(eventsUrl)).toHaveLength(0);
  });

  it("carries the current trace to PagerDuty", async () => {
    const eventsUrl = url(202);
    const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true };
    await runInWorkContext({ requestId: "alert-run-0001", trace }, () =>
      sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, trigger),
    );
    const [request] = await requestsTo(eventsUrl);
    expect(request?.headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(request?.headers["x-request-id"]).toBe("alert-run-0001");
  });

  it("uses an injected fetch, still with a timeout", async () => {
    const calls: Request[] = [];
    const fetchStub = (async (input: RequestInfo | URL, init?: RequestInit) => {
      calls.push(new Request(input, init));
      return new Response("{}", { status: 202 });
    }) as typeof fetch;
    const delivery = await sendPagerDuty(
      { eventsUrl: "https://events.test/v2/enqueue", routingKey: ROUTING_KEY },
      trigger,
      {
        fetch: fetchStub,
      },
    );
    expect(delivery).toEqual({ outcome: "delivered" });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe("https://events.test/v2/enqueue");
    expect(JSON.parse(await (calls[0] as Request).text()).routing_key).toBe(ROUTING_KEY);

    const hanging = ((_: RequestInfo | URL, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      })) as typeof fetch;
    expect(
      await sendPagerDuty({ eventsUrl: "https://events.test/v2/enqueue", routingKey: ROUTING_KEY }, trigger, {
        fetch: hanging,
        timeoutMs: 100,
      }),
    ).toEqual({ outcome: "retry", reason: "timed out after 100 ms" });
  });

  it("never writes the routing key or the body to a log line", async () => {
    setLogLevel("debug");
    const lines: string[] = [];
    const capture = (...args: unknown[]) => lines.push(args.map(String).join(" "));
    for (const level of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, level).mockImplementation(capture);
    }
    for (const eventsUrl of [url(202), url(400), url(429), url(500), url("hang")]) {
      await sendPagerDuty({ eventsUrl, routingKey: ROUTING_KEY }, trigger, { timeoutMs: 300 });
    }
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      expect(line).not.toContain(ROUTING_KEY);
      expect(line).not.toContain("burning");
      expect(line).not.toContain("/status/");
    }
    expect(lines.some((l) => l.includes("HTTP 429"))).toBe(true);
  });
});

describe("sendWebhook", () => {
  const alert = { type: "alert.firing", slo: "ingestion-ready", severity: "ticket", burnRates: { "1d": 3.4 } };

  it("posts the JSON body without a signature when there is no secret", async () => {
    const target = url(200, "hook");
    expect(await sendWebhook({ url: target, secret: undefined }, alert)).toEqual({ outcome: "delivered" });
    const [request] = await requestsTo(target);
    expect(request?.method).toBe("POST");
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(request?.headers["voiceassist-signature"]).toBeUndefined();
    expect(request?.body).toBe(JSON.stringify(alert));
  });

  it("signs the raw body as Stripe does, and the signature verifies on the receiving side", async () => {
    const target = url(200, "hook");
    const now = Math.floor(Date.now() / 1000);
    expect(await sendWebhook({ url: target, secret: SECRET }, alert)).toEqual({ outcome: "delivered" });
    const [request] = await requestsTo(target);
    const header = request?.headers["voiceassist-signature"] ?? "";
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    const t = Number(/^t=(\d+)/.exec(header)?.[1]);
    expect(Math.abs(t - now)).toBeLessThanOrEqual(2);
    const body = request?.body ?? "";
    expect(body).toBe(JSON.stringify(alert));
    // The HMAC is over "<t>.<raw body>", computed independently here.
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(SECRET),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${t}.${body}`)));
    expect(header.split("v1=")[1]).toBe(Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(""));

    expect(await verifyWebhookSignature(SECRET, header, body, now)).toBe(true);
    expect(await verifyWebhookSignature(SECRET, header, body.replace("3.4", "3.5"), now)).toBe(false);
    expect(await verifyWebhookSignature("another-secret", header, body, now)).toBe(false);
    expect(await verifyWebhookSignature(SECRET, header, body, t + 301)).toBe(false);
    expect(await verifyWebhookSignature(SECRET, header, body, t - 301)).toBe(false);
    expect(await verifyWebhookSignature(SECRET, header, body, t + 300)).toBe(true);
    expect(await verifyWebhookSignature(SECRET, header, body, t + 60, 30)).toBe(false);
  });

  it("stamps the given time, so an old request is refused however good its HMAC", async () => {
    const target = url(200, "hook");
    await sendWebhook({ url: target, secret: SECRET }, alert, { nowSeconds: 1_700_000_000 });
    const [request] = await requestsTo(target);
    const header = request?.headers["voiceassist-signature"] ?? "";
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(await verifyWebhookSignature(SECRET, header, request?.body ?? "", 1_700_000_100)).toBe(true);
    expect(await verifyWebhookSignature(SECRET, header, request?.body ?? "", Math.floor(Date.now() / 1000))).toBe(
      false,
    );
  });

  it("refuses malformed signature headers", async () => {
    const body = JSON.stringify(alert);
    const good = await signatureHeader(SECRET, 1_700_000_000, body);
    const now = 1_700_000_000;
    expect(await verifyWebhookSignature(SECRET, good, body, now)).toBe(true);
    for (const header of [
      undefined,
      null,
      "",
      "v1=abc",
      good.replace(/t=\d+,/, ""),
      good.replace(/,v1=.*/, ""),
      "t=x,v1=00",
    ]) {
      expect(await verifyWebhookSignature(SECRET, header, body, now)).toBe(false);
    }
    // Several v1 values (a receiver mid-rotation): any one matching verifies.
    expect(await verifyWebhookSignature(SECRET, `${good},v1=${"0".repeat(64)}`, body, now)).toBe(true);
    expect(await verifyWebhookSignature(SECRET, `t=1700000000,v1=${"0".repeat(64)}`, body, now)).toBe(false);
  });

  it.each([
    [200, { outcome: "delivered" }],
    [204, { outcome: "delivered" }],
    [302, { outcome: "rejected", reason: "HTTP 302" }],
    [400, { outcome: "rejected", reason: "HTTP 400" }],
    [401, { outcome: "rejected", reason: "HTTP 401" }],
    [404, { outcome: "rejected", reason: "HTTP 404" }],
    [410, { outcome: "rejected", reason: "HTTP 410" }],
    [408, { outcome: "retry", reason: "HTTP 408" }],
    [429, { outcome: "retry", reason: "HTTP 429" }],
    [500, { outcome: "retry", reason: "HTTP 500" }],
    [504, { outcome: "retry", reason: "HTTP 504" }],
  ])("maps HTTP %i to %o", async (status, expected) => {
    const target = url(status, "hook");
    const delivery = await sendWebhook({ url: target, secret: SECRET }, alert);
    expect(delivery).toEqual(expected);
    expect(await requestsTo(target)).toHaveLength(1);
    expect(reasonOf(delivery)).not.toContain(SECRET);
    expect(reasonOf(delivery)).not.toContain("ingestion-ready");
  });

  it("retries after a timeout and after a refused connection; rejects a bad URL", async () => {
    expect(await sendWebhook({ url: url("hang", "hook"), secret: SECRET }, alert, { timeoutMs: 250 })).toEqual({
      outcome: "retry",
      reason: "timed out after 250 ms",
    });
    expect(await sendWebhook({ url: "http://127.0.0.1:1/hook", secret: SECRET }, alert)).toEqual({
      outcome: "retry",
      reason: "connection failed",
    });
    expect(await sendWebhook({ url: "ftp://example.test/hook", secret: SECRET }, alert)).toEqual({
      outcome: "rejected",
      reason: "invalid URL",
    });
  });

  it("never writes the secret or the body to a log line", async () => {
    setLogLevel("debug");
    const lines: string[] = [];
    const capture = (...args: unknown[]) => lines.push(args.map(String).join(" "));
    for (const level of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, level).mockImplementation(capture);
    }
    for (const target of [url(200, "hook"), url(400, "hook"), url(503, "hook")]) {
      await sendWebhook({ url: target, secret: SECRET }, alert);
    }
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) {
      expect(line).not.toContain(SECRET);
      expect(line).not.toContain("ingestion-ready");
      expect(line).not.toContain("/status/");
    }
  });
});

describe("nextAttemptDelayMs", () => {
  it("doubles from 30 s up to 15 min, jittered down to no less than 75 %", () => {
    const top = (attempt: number) => nextAttemptDelayMs(attempt, () => 1);
    expect([0, 1, 2, 3, 4, 5, 6, 50, 5000].map(top)).toEqual([
      30_000, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000, 900_000, 900_000,
    ]);
    expect(nextAttemptDelayMs(0, () => 0)).toBe(22_500);
    expect(nextAttemptDelayMs(5, () => 0)).toBe(675_000);
    expect(nextAttemptDelayMs(-3, () => 1)).toBe(30_000);
    expect(nextAttemptDelayMs(Number.NaN, () => 1)).toBe(30_000);
    for (let attempt = 0; attempt < 20; attempt++) {
      const delay = nextAttemptDelayMs(attempt);
      expect(delay).toBeGreaterThanOrEqual(22_500);
      expect(delay).toBeLessThanOrEqual(900_000);
    }
  });
});
