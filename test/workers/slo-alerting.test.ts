import { env, runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env.ts";
import type { MetricEvent } from "../../src/metrics/catalog.ts";
import { metricsAggregator } from "../../src/metrics/record.ts";
import { AlertBook } from "../../src/ops/alerts.ts";
import { BURN_PAIRS, CALM, type PairReading, step } from "../../src/ops/burn-rate.ts";
import { deliverDue } from "../../src/ops/deliver.ts";
import { alertManager, evaluateSlos } from "../../src/ops/jobs.ts";
import { SloLedger } from "../../src/ops/ledger.ts";
import { verifyWebhookSignature } from "../../src/ops/notify/signature.ts";
import { sloEventsOf } from "../../src/ops/sli.ts";
import { SLOS } from "../../src/ops/slos.ts";
import type { MetricsAggregator } from "../../workers/metrics-aggregator.ts";
import { call, received } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";

// SLO evaluation end to end: events counted into the ledger of the real MetricsAggregator object, the real
// AlertManager evaluating minute by minute, and PagerDuty and the webhook played by the request receiver
// (vitest.config.ts points PAGERDUTY_EVENTS_URL and ALERT_WEBHOOK_URL at it). The scenarios run on a synthetic
// clock ten days ahead, so the windows they read hold only the minutes they inject; the counting of real
// requests is checked separately.

const workerEnv = env as unknown as Env;
const MINUTE = 60_000;
const WEBHOOK_SECRET = "test-webhook-secret-0123456789";
let clock = Math.floor((Date.now() + 10 * 86_400_000) / MINUTE) * MINUTE;

const requests = (status: string, count: number): MetricEvent => ({
  name: "http_requests_total",
  labels: { method: "GET", route: "/api/conversations", status },
  value: count,
});
const durations = (route: string, seconds: number, count: number): MetricEvent[] =>
  Array.from({ length: count }, () => ({
    name: "http_request_duration_seconds",
    labels: { method: "POST", route, status: "200" },
    value: seconds,
  }));

async function inject(minuteMs: number, events: MetricEvent[]) {
  await runInDurableObject(metricsAggregator(workerEnv), (_: MetricsAggregator, state) => {
    state.storage.transactionSync(() => new SloLedger(state.storage.sql).count(events, minuteMs));
  });
}

/** Injects `events` into each minute from `from` (inclusive) for `minutes`, then evaluates at every next minute. */
async function run(from: number, minutes: number, events: (minute: number) => MetricEvent[]) {
  for (let i = 0; i < minutes; i++) {
    await inject(from + i * MINUTE, events(from + i * MINUTE));
    await alertManager(workerEnv).evaluate(from + (i + 1) * MINUTE);
  }
}

interface Sent {
  path: string;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  raw: string;
}
async function sent(): Promise<Sent[]> {
  return (await received())
    .filter((r) => r.path === "/pagerduty/v2/enqueue" || r.path === "/alerts/webhook")
    .map((r) => ({ path: r.path, body: JSON.parse(r.body), headers: r.headers, raw: r.body }));
}
const pagerDutyFor = (all: Sent[], dedupKey: string) =>
  all.filter((s) => s.path === "/pagerduty/v2/enqueue" && s.body.dedup_key === dedupKey);
const webhookFor = (all: Sent[], slo: string, severity: string) =>
  all.filter((s) => {
    const alert = s.body.alert as { slo: string; severity: string } | undefined;
    return s.path === "/alerts/webhook" && alert?.slo === slo && alert.severity === severity;
  });

let admin: TestUser;
let viewer: TestUser;

beforeAll(async () => {
  admin = await signedInUser("admin");
  viewer = await signedInUser("viewer");
  // Another file may have left a silence (the fuzz and authorization suites call every route).
  const silences = await call("GET", "/api/admin/alerts/silences", { token: admin.access });
  for (const s of silences.body.items)
    await call("DELETE", `/api/admin/alerts/silences/${s.id}`, { token: admin.access });
});

describe("burn-rate steps (pure)", () => {
  const readings = (burns: Record<string, [number, number]>): PairReading[] =>
    BURN_PAIRS.map((pair) => ({ pair, long: burns[pair.id]?.[0] ?? 0, short: burns[pair.id]?.[1] ?? 0 }));

  it("fires on the fast pair, resolves when its short window cools, and disarms the slow pair still burning", () => {
    const fired = step(CALM, "page", readings({ "1h-5m": [20, 200], "6h-30m": [20, 40] }));
    expect(fired).toEqual({ state: { firedBy: "1h-5m", disarmed: [] }, transition: "fired" });
    const cooled = step(fired.state, "page", readings({ "1h-5m": [20, 0], "6h-30m": [20, 40] }));
    expect(cooled).toEqual({ state: { firedBy: null, disarmed: ["6h-30m"] }, transition: "resolved" });
    const quiet = step(cooled.state, "page", readings({ "1h-5m": [20, 0], "6h-30m": [20, 40] }));
    expect(quiet.transition).toBeNull();
    const rearmed = step(quiet.state, "page", readings({ "1h-5m": [20, 0], "6h-30m": [20, 5] }));
    expect(rearmed).toEqual({ state: { firedBy: null, disarmed: [] }, transition: null });
  });

  it("pages on a slow burn through the 6h/30m pair, and tickets stay apart from pages", () => {
    const slow = step(CALM, "page", readings({ "1h-5m": [7, 7], "6h-30m": [7, 7], "1d-2h": [7, 7] }));
    expect(slow).toEqual({ state: { firedBy: "6h-30m", disarmed: [] }, transition: "fired" });
    const ticket = step(CALM, "ticket", readings({ "1h-5m": [100, 100], "3d-6h": [1.5, 1.5] }));
    expect(ticket).toEqual({ state: { firedBy: "3d-6h", disarmed: [] }, transition: "fired" });
  });
});

describe("SLIs of the ingestion SLOs (pure)", () => {
  const events = (event: MetricEvent) => sloEventsOf(SLOS, event);
  const ready = (outcome: string, seconds: number): MetricEvent => ({
    name: "kb_document_ready_seconds",
    labels: { outcome },
    value: seconds,
  });
  const delivery = (queue: string, outcome: string): MetricEvent => ({
    name: "queue_messages_total",
    labels: { queue, outcome },
    value: 1,
  });

  it("counts a document good only when it ended ready within 5 minutes", () => {
    expect(events(ready("ready", 299))).toEqual([{ slo: "ingestion-ready", good: 1, valid: 1 }]);
    expect(events(ready("ready", 301))).toEqual([{ slo: "ingestion-ready", good: 0, valid: 1 }]);
    expect(events(ready("failed", 3))).toEqual([{ slo: "ingestion-ready", good: 0, valid: 1 }]);
  });

  it("counts every kb-ingest delivery, a dead-lettered one as bad", () => {
    expect(events(delivery("kb-ingest", "ack"))).toEqual([{ slo: "ingestion-dead-letters", good: 1, valid: 1 }]);
    expect(events(delivery("kb-ingest", "dead_letter"))).toEqual([
      { slo: "ingestion-dead-letters", good: 0, valid: 1 },
    ]);
    expect(events(delivery("another-queue", "dead_letter"))).toEqual([]);
  });
});

describe("the SLO ledger", () => {
  it("counts the SLO events of each minute and sums whole minutes before now", async () => {
    const stub = workerEnv.METRICS.get(workerEnv.METRICS.idFromName(`ledger-${crypto.randomUUID()}`));
    const t = clock;
    const windows = await runInDurableObject(stub, (_: MetricsAggregator, state) => {
      const ledger = new SloLedger(state.storage.sql);
      ledger.count([requests("200", 7), requests("503", 3)], t - 2 * MINUTE);
      ledger.count(
        [
          requests("200", 5),
          { name: "http_requests_total", labels: { method: "GET", route: "/health", status: "500" }, value: 4 },
        ],
        t - MINUTE,
      );
      ledger.count([requests("500", 100)], t); // the minute in progress: not read yet
      ledger.count(durations("/api/kb/search", 0.2, 3).concat(durations("/api/kb/search", 0.31, 1)), t - MINUTE);
      ledger.count([requests("200", 1)], t - 31 * 86_400_000); // older than the period
      ledger.prune(t);
      const rows = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM slo_minutes").one().n;
      return { counts: ledger.windows(t, [1, 5]), rows };
    });
    expect(windows.rows).toBe(4);
    expect(windows.counts.get("api-availability")?.get(1)).toEqual({ good: 5, valid: 5 });
    expect(windows.counts.get("api-availability")?.get(5)).toEqual({ good: 12, valid: 15 });
    expect(windows.counts.get("search-latency")?.get(5)).toEqual({ good: 3, valid: 4 });
  });

  it("counts every answered /api route once, a 5xx as bad, and neither unknown paths nor routes outside /api", async () => {
    const totals = () =>
      runInDurableObject(metricsAggregator(workerEnv), (_: MetricsAggregator, state) =>
        state.storage.sql
          .exec<{ good: number; valid: number }>(
            "SELECT COALESCE(SUM(good), 0) AS good, COALESCE(SUM(valid), 0) AS valid FROM slo_minutes WHERE slo = 'api-availability'",
          )
          .one(),
      );
    const before = await totals();
    expect((await call("GET", "/api/auth/me", { token: viewer.access })).status).toBe(200);
    expect((await call("GET", "/api/no-such-route", { token: viewer.access, undocumented: true })).status).toBe(404);
    const down = await call("GET", "/api/auth/me", {
      token: viewer.access,
      overrides: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/closed", NEON_LOCAL_PROXY: "127.0.0.1:1" },
    });
    expect(down.status).toBeGreaterThanOrEqual(500);
    expect((await call("GET", "/health")).status).toBe(200);
    const after = await totals();
    expect({ good: after.good - before.good, valid: after.valid - before.valid }).toEqual({ good: 1, valid: 2 });
  });
});

describe("alerting on a synthetic clock", () => {
  it("pages on a full api-availability outage at the next minute, notifies PagerDuty and the webhook, and resolves 5 minutes after recovery", async () => {
    const start = clock;
    const before = await sent();
    await run(start, 60, () => [requests("200", 100)]);
    expect((await call("GET", "/api/admin/alerts?state=firing", { token: viewer.access })).body.items).toEqual([]);

    const outage = start + 60 * MINUTE;
    await run(outage, 1, () => [requests("503", 100)]);
    const alerts = (await call("GET", "/api/admin/alerts", { token: viewer.access })).body.items as Record<
      string,
      unknown
    >[];
    const page = alerts.find((a) => a.slo === "api-availability" && a.severity === "page" && a.resolved_at === null);
    expect(page).toMatchObject({
      state: "notified",
      pair: "1h-5m",
      dedup_key: "voiceassist/api-availability/page",
      fired_at: new Date(outage + MINUTE).toISOString(),
    });

    const delivered = (await sent()).slice(before.length);
    const [trigger, ...more] = pagerDutyFor(delivered, "voiceassist/api-availability/page");
    expect(more).toEqual([]);
    expect(trigger?.body).toMatchObject({
      routing_key: "test-routing-key-level-0",
      event_action: "trigger",
      payload: {
        severity: "critical",
        source: "voiceassist-edge test",
        custom_details: {
          slo: "api-availability",
          pair: "1h-5m",
          runbook_url: "docs/runbooks/slos.md#api-availability",
        },
      },
    });
    const [ticket] = webhookFor(delivered, "api-availability", "ticket");
    expect(ticket?.body.type).toBe("alert.fired");
    const signature = ticket?.headers["voiceassist-signature"] as string;
    expect(
      await verifyWebhookSignature(WEBHOOK_SECRET, signature, ticket?.raw ?? "", Math.floor(Date.now() / 1000)),
    ).toBe(true);

    // An admin acknowledges: PagerDuty hears it at the next evaluation, and no escalation follows.
    const ack = await call("POST", `/api/admin/alerts/${page?.id}/acknowledge`, { token: admin.access });
    expect(ack.body).toMatchObject({ state: "acknowledged", acknowledged_by: admin.id });
    const audit = await db.execute(
      sql`select actor_id from audit_log where action = 'ops.alert.acknowledged' and target_id = ${String(page?.id)}`,
    );
    expect(audit.rows).toEqual([{ actor_id: admin.id }]);
    await run(outage + MINUTE, 1, () => [requests("503", 100)]);

    // Recovery from minute outage+2: the 5-minute window still holds a bad minute until outage+7.
    await run(outage + 2 * MINUTE, 4, () => [requests("200", 100)]);
    expect(
      (await call("GET", "/api/admin/alerts?state=acknowledged", { token: viewer.access })).body.items,
    ).toHaveLength(1);
    await run(outage + 6 * MINUTE, 4, () => [requests("200", 100)]);
    const resolved = (await call("GET", "/api/admin/alerts?state=resolved", { token: viewer.access })).body.items.find(
      (a: Record<string, unknown>) => a.id === page?.id,
    );
    expect(resolved?.resolved_at).toBe(new Date(outage + 7 * MINUTE).toISOString());

    const all = pagerDutyFor((await sent()).slice(before.length), "voiceassist/api-availability/page");
    expect(all.map((s) => s.body.event_action)).toEqual(["trigger", "acknowledge", "resolve"]);
    // The 6h/30m pair still burns after the resolve: disarmed, it does not page again.
    const open = (await call("GET", "/api/admin/alerts", { token: viewer.access })).body.items.filter(
      (a: Record<string, unknown>) => a.slo === "api-availability" && a.severity === "page" && a.resolved_at === null,
    );
    expect(open).toEqual([]);

    // The cron job copies the alert's history to Postgres (kept in the object until then).
    const cron = { scheduledTime: outage + 10 * MINUTE, cron: "* * * * *", noRetry() {} } as ScheduledController;
    await evaluateSlos(workerEnv, cron);
    const history = await db.execute(
      sql`select event from alert_events where alert_id = ${String(page?.id)} order by occurred_at, event`,
    );
    // (Sorted: the acknowledgement carries the real time, the rest the synthetic clock.)
    expect(history.rows.map((r) => r.event).sort()).toEqual(["acknowledged", "fired", "notified", "resolved"]);
    expect(await alertManager(workerEnv).pendingHistory(1000)).toEqual([]);
    clock = outage + 4 * 86_400_000;
  });

  it("escalates an unacknowledged page to the next routing key, then to the webhook, and resolves everywhere it went", async () => {
    const start = clock;
    const before = await sent();
    await run(start, 1, () => durations("/api/kb/search", 0.9, 50));
    await run(start + MINUTE, 7, () => durations("/api/kb/search", 0.9, 50));
    await run(start + 8 * MINUTE, 10, () => durations("/api/kb/search", 0.1, 50));
    const delivered = (await sent()).slice(before.length);
    const pages = pagerDutyFor(delivered, "voiceassist/search-latency/page");
    expect(pages.map((s) => [s.body.event_action, s.body.routing_key])).toEqual([
      ["trigger", "test-routing-key-level-0"],
      ["trigger", "test-routing-key-level-1"],
      ["resolve", "test-routing-key-level-0"],
      ["resolve", "test-routing-key-level-1"],
    ]);
    expect(webhookFor(delivered, "search-latency", "page").map((s) => s.body.type)).toEqual([
      "alert.escalated",
      "alert.resolved",
    ]);
    clock = start + 4 * 86_400_000;
  });

  it("holds back notifications while silenced, lists the alert, and sends once the silence ends", async () => {
    const start = clock;
    const before = await sent();
    const silence = await call("POST", "/api/admin/alerts/silences", {
      token: admin.access,
      json: { slo: "sign-in-latency", until: new Date(start + 60 * MINUTE).toISOString(), reason: "load test" },
    });
    expect(silence.status).toBe(201);
    await run(start, 2, () => durations("/api/auth/login", 0.9, 50));
    const firing = (await call("GET", "/api/admin/alerts?state=firing", { token: viewer.access })).body.items;
    expect(firing.map((a: Record<string, unknown>) => [a.slo, a.severity]).sort()).toEqual([
      ["sign-in-latency", "page"],
      ["sign-in-latency", "ticket"],
    ]);
    expect(pagerDutyFor((await sent()).slice(before.length), "voiceassist/sign-in-latency/page")).toEqual([]);

    expect(
      (await call("DELETE", `/api/admin/alerts/silences/${silence.body.id}`, { token: admin.access })).status,
    ).toBe(204);
    await run(start + 2 * MINUTE, 1, () => durations("/api/auth/login", 0.9, 50));
    const pages = pagerDutyFor((await sent()).slice(before.length), "voiceassist/sign-in-latency/page");
    expect(pages.map((s) => s.body.event_action)).toEqual(["trigger"]);
    await run(start + 3 * MINUTE, 6, () => durations("/api/auth/login", 0.1, 50));
    clock = start + 4 * 86_400_000;
  });
});

describe("deliveries", () => {
  it("raises only a ticket for a voice latency between its warning and critical thresholds", async () => {
    const start = clock;
    const connects = (seconds: number): MetricEvent[] =>
      Array.from({ length: 20 }, () => ({ name: "voice_connect_seconds", labels: { mode: "local" }, value: seconds }));
    await run(start, 3, () => connects(0.45));
    const open = (await call("GET", "/api/admin/alerts", { token: viewer.access })).body.items.filter(
      (a: Record<string, unknown>) => String(a.slo).startsWith("voice-connect") && a.resolved_at === null,
    );
    expect(open.map((a: Record<string, unknown>) => `${a.slo}/${a.severity}`)).toEqual([
      "voice-connect-warning/ticket",
    ]);
    // Past the critical threshold the critical SLO pages as well.
    await run(start + 3 * MINUTE, 2, () => connects(0.6));
    const now = (await call("GET", "/api/admin/alerts", { token: viewer.access })).body.items.filter(
      (a: Record<string, unknown>) => String(a.slo).startsWith("voice-connect") && a.resolved_at === null,
    );
    expect(now.map((a: Record<string, unknown>) => `${a.slo}/${a.severity}`).sort()).toEqual([
      "voice-connect-warning/ticket",
      "voice-connect/page",
      "voice-connect/ticket",
    ]);
    // Recovery, then a clean slate for the next scenario.
    await run(start + 5 * MINUTE, 10, () => connects(0.1));
    clock = start + 4 * 86_400_000;
    await run(clock, 1, () => []);
  });

  it("retries a failed send on a later minute, never lets a resolve overtake its trigger, and drops a rejected one", async () => {
    const stub = workerEnv.ALERTS.get(workerEnv.ALERTS.idFromName(`deliveries-${crypto.randomUUID()}`));
    const log = await runInDurableObject(stub, async (_, state) => {
      const book = new AlertBook(state.storage.sql);
      const t = 1_000_000;
      book.save({
        id: "a1",
        slo: "api-availability",
        severity: "page",
        dedupKey: "k",
        state: "firing",
        pair: "1h-5m",
        burnRates: {},
        firedAt: t,
        notifiedAt: null,
        acknowledgedAt: null,
        acknowledgedBy: null,
        resolvedAt: null,
        escalationLevel: 0,
        escalatedAt: null,
        sentTo: [{ channel: "pagerduty", level: 0 }],
      });
      book.queue("a1", "pagerduty", 0, "trigger", t);
      book.queue("a1", "pagerduty", 0, "resolve", t);
      book.queue("a1", "webhook", 0, "trigger", t);
      const answers = ["retry", "rejected", "delivered", "delivered"];
      const calls: string[] = [];
      const send = async (d: { channel: string; action: string }) => {
        calls.push(`${d.channel}:${d.action}`);
        const outcome = answers.shift() as "retry" | "rejected" | "delivered";
        return outcome === "delivered" ? { outcome } : { outcome, reason: "HTTP 500" };
      };
      const first = await deliverDue(book, send, t);
      const early = await deliverDue(book, send, t + 1_000);
      const later = await deliverDue(book, send, t + 31 * 60_000);
      return { calls, first, early, later, left: book.deliveries().length, state: book.get("a1")?.state };
    });
    expect(log.first).toEqual({ delivered: 0, retrying: 1, rejected: 0 });
    expect(log.early).toEqual({ delivered: 0, retrying: 0, rejected: 0 });
    expect(log.later).toEqual({ delivered: 2, retrying: 0, rejected: 1 });
    expect(log.calls).toEqual(["pagerduty:trigger", "pagerduty:trigger", "pagerduty:resolve", "webhook:trigger"]);
    expect(log.left).toBe(0);
    expect(log.state).toBe("notified");
  });
});

describe("admin routes", () => {
  it("lists every SLO with its objective, windows, budget and status", async () => {
    const res = await call("GET", "/api/admin/slos", { token: viewer.access });
    expect(res.status).toBe(200);
    expect(res.body.items.map((s: Record<string, unknown>) => s.id)).toEqual([
      "api-availability",
      "flag-evaluation-latency",
      "search-latency",
      "answer-first-token",
      "sign-in-latency",
      "voice-connect",
      "voice-connect-warning",
      "voice-first-transcript",
      "voice-first-transcript-warning",
      "voice-response",
      "voice-response-warning",
      "ingestion-ready",
      "ingestion-dead-letters",
      "flag-propagation",
    ]);
    const availability = res.body.items[0];
    expect(availability).toMatchObject({
      objective: 0.999,
      period_days: 30,
      status: expect.stringMatching(/ok|ticket|page/),
    });
    expect(availability.windows.map((w: { minutes: number }) => w.minutes)).toEqual([
      5, 30, 60, 120, 360, 1440, 4320, 43200,
    ]);
  });

  it("refuses a silence that is not ahead, names an unknown SLO, or carries extra fields", async () => {
    const bad = [
      { until: new Date(Date.now() - 60_000).toISOString(), reason: "past" },
      { until: new Date(Date.now() + 40 * 86_400_000).toISOString(), reason: "too far" },
      { slo: "nope", until: new Date(Date.now() + 60_000).toISOString(), reason: "x" },
      { until: new Date(Date.now() + 60_000).toISOString(), reason: "" },
      { until: new Date(Date.now() + 60_000).toISOString(), reason: "x", extra: 1 },
    ];
    for (const json of bad) {
      const res = await call("POST", "/api/admin/alerts/silences", { token: admin.access, json });
      expect(res.status, JSON.stringify(json)).toBe(422);
      expect(res.body.errors[0].field).toMatch(/^body/);
    }
    expect(
      (await call("POST", `/api/admin/alerts/${crypto.randomUUID()}/acknowledge`, { token: admin.access })).status,
    ).toBe(404);
    expect(
      (await call("DELETE", `/api/admin/alerts/silences/${crypto.randomUUID()}`, { token: admin.access })).status,
    ).toBe(404);
  });
});
