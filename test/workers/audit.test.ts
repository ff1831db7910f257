import { env } from "cloudflare:workers";
import { and, asc, eq, gt, like, lte, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { GENESIS, hashRow, verifyChain } from "../../src/audit/chain.ts";
import { exportAuditCsv, listAudit, verifyAuditChain } from "../../src/audit/query.ts";
import { type AuditEvent, type AuditWriter, recordAudit } from "../../src/audit/record.ts";
import type { Role } from "../../src/auth/principal.ts";
import { startSession } from "../../src/auth/sessions.ts";
import { createDb, withPoolDb } from "../../src/db/client.ts";
import { auditLog } from "../../src/db/schema/audit.ts";
import { users } from "../../src/db/schema/identity.ts";
import { type Env, loadConfig } from "../../src/env.ts";
import { runInWorkContext, type WorkContext } from "../../src/observability/context.ts";
import { REDACTED } from "../../src/observability/redact.ts";
import { scrapeSample, settledSample } from "./exposition.ts";
import { serve } from "./harness.ts";

// The database is shared by every test file in the run: each test works on rows it tagged itself
// (a unique action prefix or request id) and never leaves the chain broken.
const loaded = loadConfig(env as Env);
if (!loaded.ok) throw new Error("test environment is invalid");
const config = loaded.config;
const db = createDb(config);

type Row = typeof auditLog.$inferSelect;

/** A fresh action prefix, e.g. "test.t1a2b3c4d5e6"; its events are "<prefix>.<name>". */
const newTag = () => `test.t${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;

const rowsTagged = (tag: string) =>
  db
    .select()
    .from(auditLog)
    .where(like(auditLog.action, `${tag}.%`))
    .orderBy(asc(auditLog.seq));

const headSeq = async () =>
  (await db.select({ seq: auditLog.seq }).from(auditLog).orderBy(sql`seq desc`).limit(1))[0]?.seq ?? 0;

function workContext(overrides: Partial<WorkContext> = {}): WorkContext {
  return {
    requestId: `req-${crypto.randomUUID()}`,
    trace: { traceId: crypto.randomUUID().replace(/-/g, ""), spanId: "00f067aa0ba902b7", sampled: true },
    ip: "203.0.113.7",
    userAgent: "audit-test/1.0",
    ...overrides,
  };
}

async function recordAll(events: AuditEvent[], context = workContext()) {
  for (const event of events) await runInWorkContext(context, () => recordAudit(config, event));
}

class Rollback extends Error {}

/** Runs work in a transaction that is always rolled back: tampering that other test files never see. */
async function inRolledBackTransaction<T>(work: (tx: AuditWriter) => Promise<T>): Promise<T> {
  let result: T | undefined;
  try {
    await withPoolDb(config, (pool) =>
      pool.transaction(async (tx) => {
        result = await work(tx);
        throw new Rollback();
      }),
    );
  } catch (error) {
    if (!(error instanceof Rollback)) throw error;
  }
  return result as T;
}

describe("recordAudit", () => {
  it("appends rows that chain onto the previous row, with the request's context", async () => {
    const tag = newTag();
    const context = workContext({ userId: "user-ctx-1" });
    await recordAll(
      [{ action: `${tag}.one` }, { action: `${tag}.two`, outcome: "failure", target: { type: "user", id: "u9" } }],
      context,
    );
    const rows = await rowsTagged(tag);
    expect(rows).toHaveLength(2);
    const [first, second] = rows as [Row, Row];
    expect(first).toMatchObject({
      actorType: "user",
      actorId: "user-ctx-1",
      outcome: "success",
      requestId: context.requestId,
      traceId: context.trace.traceId,
      ip: "203.0.113.7",
      userAgent: "audit-test/1.0",
      metadata: {},
      before: null,
      after: null,
    });
    expect(second).toMatchObject({ outcome: "failure", targetType: "user", targetId: "u9" });
    for (const row of rows) {
      const [previous] = await db
        .select()
        .from(auditLog)
        .where(eq(auditLog.seq, row.seq - 1));
      expect(row.prevHash).toBe(previous?.hash ?? GENESIS.hash);
      expect(await hashRow(row.prevHash, row)).toBe(row.hash);
    }
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });

  it("records anonymous without a signed-in user, and an explicit actor as given", async () => {
    const tag = newTag();
    await recordAll([
      { action: `${tag}.anon` },
      { action: `${tag}.system`, actor: { type: "system" } },
      { action: `${tag}.key`, actor: { type: "api_key", id: "k1" } },
    ]);
    const rows = await rowsTagged(tag);
    expect(rows.map((r) => [r.actorType, r.actorId])).toEqual([
      ["anonymous", null],
      ["system", null],
      ["api_key", "k1"],
    ]);
  });

  it("works outside any request (cron, queue) with null request fields", async () => {
    const tag = newTag();
    await recordAudit(config, { action: `${tag}.cron`, actor: { type: "system" } });
    const [row] = await rowsTagged(tag);
    expect(row).toMatchObject({ actorType: "system", requestId: null, traceId: null, ip: null, userAgent: null });
  });

  it("keeps one unbroken chain when 20 appends race", async () => {
    const tag = newTag();
    const context = workContext();
    const start = await headSeq();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runInWorkContext(context, () => recordAudit(config, { action: `${tag}.race`, metadata: { i } })),
      ),
    );
    const mine = await db.select().from(auditLog).where(eq(auditLog.requestId, context.requestId));
    expect(mine).toHaveLength(20);
    expect(new Set(mine.map((r) => (r.metadata as { i: number }).i)).size).toBe(20);
    const end = Math.max(...mine.map((r) => r.seq));
    // Every row appended since the start (ours and any other file's) links up, with no gap.
    const span = await db
      .select()
      .from(auditLog)
      .where(and(gt(auditLog.seq, start), lte(auditLog.seq, end)))
      .orderBy(asc(auditLog.seq));
    expect(span.map((r) => r.seq)).toEqual(Array.from({ length: end - start }, (_, i) => start + i + 1));
    const [before] = await db.select().from(auditLog).where(eq(auditLog.seq, start));
    const verdict = await verifyChain(span, { seq: start, hash: before?.hash ?? GENESIS.hash });
    expect(verdict).toMatchObject({ ok: true, checked: end - start });
  });

  it("redacts secrets and e-mail addresses in metadata, before and after", async () => {
    const tag = newTag();
    await recordAll([
      {
        action: `${tag}.secret`,
        before: { password_hash: "pbkdf2$...", role: "user" },
        after: { role: "admin", nested: { refresh_token: "rt-1" } },
        metadata: { api_key: "va_k_abc", note: "sent to jane@example.org with Bearer abc.def", count: 2 },
      },
    ]);
    const [row] = await rowsTagged(tag);
    expect(row?.before).toEqual({ password_hash: REDACTED, role: "user" });
    expect(row?.after).toEqual({ role: "admin", nested: { refresh_token: REDACTED } });
    expect(row?.metadata).toEqual({ api_key: REDACTED, note: `sent to ${REDACTED} with Bearer ${REDACTED}`, count: 2 });
    expect(JSON.stringify(row)).not.toMatch(/va_k_abc|rt-1|jane@example|pbkdf2/);
    // The hash covers what was stored, so the redacted row still verifies.
    expect(await hashRow(row?.prevHash as string, row as NonNullable<typeof row>)).toBe(row?.hash);
  });

  it("refuses an action that is not dotted lowercase", async () => {
    await expect(recordAudit(config, { action: "Login" })).rejects.toThrow(/dotted lowercase/);
  });

  it("commits with the caller's transaction, and rolls back with it", async () => {
    const tag = newTag();
    await withPoolDb(config, (pool) =>
      pool.transaction(async (tx) => {
        await recordAudit(config, { action: `${tag}.kept` }, { db: tx });
      }),
    );
    await inRolledBackTransaction((tx) => recordAudit(config, { action: `${tag}.dropped` }, { db: tx }));
    expect((await rowsTagged(tag)).map((r) => r.action)).toEqual([`${tag}.kept`]);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });
});

describe("verifyAuditChain", () => {
  async function threeRows() {
    const tag = newTag();
    await recordAll([{ action: `${tag}.a` }, { action: `${tag}.b` }, { action: `${tag}.c` }]);
    return (await rowsTagged(tag)) as [Row, Row, Row];
  }

  it("finds an edited row and names exactly that row", async () => {
    const rows = await threeRows();
    const edited = rows[1];
    const report = await inRolledBackTransaction(async (tx) => {
      await tx.execute(sql`update audit_log set action = 'auth.login' where id = ${edited.id}`);
      return verifyAuditChain(tx, 50);
    });
    expect(report).toMatchObject({
      ok: false,
      firstBroken: { seq: edited.seq, id: edited.id, reason: "hash mismatch" },
    });
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });

  it("finds a deleted middle row at the row after the gap", async () => {
    const rows = await threeRows();
    const [, deleted, next] = rows;
    const report = await inRolledBackTransaction(async (tx) => {
      await tx.execute(sql`delete from audit_log where id = ${deleted.id}`);
      return verifyAuditChain(tx, 50);
    });
    expect(report).toMatchObject({
      ok: false,
      firstBroken: { seq: next.seq, id: next.id, reason: "gap in seq (row deleted?)" },
    });
  });

  it("finds a row re-hashed after an edit at the next row", async () => {
    const rows = await threeRows();
    const [, edited, next] = rows;
    const forged = await hashRow(edited.prevHash, { ...edited, outcome: "failure" });
    const report = await inRolledBackTransaction(async (tx) => {
      await tx.execute(sql`update audit_log set outcome = 'failure', hash = ${forged} where id = ${edited.id}`);
      return verifyAuditChain(tx);
    });
    expect(report).toMatchObject({
      ok: false,
      firstBroken: { seq: next.seq, id: next.id, reason: "prev_hash does not match the previous row" },
    });
  });

  it("counts every row it checked across pages", async () => {
    await threeRows();
    const total = await headSeq();
    const report = await verifyAuditChain(db, 2);
    expect(report.ok).toBe(true);
    expect(report.rowsChecked).toBeGreaterThanOrEqual(total);
  });
});

describe("listAudit", () => {
  async function fixture() {
    const tag = newTag();
    const actor = `actor-${tag}`;
    await recordAll([
      { action: `${tag}.login`, actor: { type: "user", id: actor } },
      { action: `${tag}.login`, outcome: "failure", actor: { type: "anonymous" } },
      { action: `${tag}.role_changed`, actor: { type: "user", id: actor }, target: { type: "user", id: "t1" } },
      { action: `${tag}.key_created`, actor: { type: "api_key", id: "k1" }, target: { type: "api_key", id: "k2" } },
      { action: `${tag}.logout`, outcome: "denied", actor: { type: "user", id: actor } },
    ]);
    // A sibling whose name shares the characters but not the dotted prefix.
    await recordAll([{ action: `${tag}x.other` }]);
    return { tag, actor, rows: await rowsTagged(tag) };
  }

  it("filters by action (exact or prefix), actor, outcome, target and time", async () => {
    const { tag, actor, rows } = await fixture();
    const seqs = async (filter: Parameters<typeof listAudit>[1]) =>
      (await listAudit(db, filter, { limit: 200 })).items.map((r) => r.seq).sort((a, b) => a - b);
    const seqOf = (pick: (r: Row) => boolean) => rows.filter(pick).map((r) => r.seq);

    expect(await seqs({ action: `${tag}.*` })).toEqual(seqOf(() => true));
    expect(await seqs({ action: `${tag}.login` })).toEqual(seqOf((r) => r.action === `${tag}.login`));
    expect(await seqs({ actorId: actor })).toEqual(seqOf((r) => r.actorId === actor));
    expect(await seqs({ action: `${tag}.*`, actorType: "anonymous" })).toEqual(
      seqOf((r) => r.actorType === "anonymous"),
    );
    expect(await seqs({ action: `${tag}.*`, outcome: "denied" })).toEqual(seqOf((r) => r.outcome === "denied"));
    expect(await seqs({ action: `${tag}.*`, targetType: "api_key", targetId: "k2" })).toEqual(
      seqOf((r) => r.targetId === "k2"),
    );
    const pivot = (rows[2] as Row).occurredAt;
    expect(await seqs({ action: `${tag}.*`, from: pivot })).toEqual(seqOf((r) => r.occurredAt >= pivot));
    expect(await seqs({ action: `${tag}.*`, to: pivot })).toEqual(seqOf((r) => r.occurredAt < pivot));
  });

  it("pages newest first by cursor, with the total for the filter", async () => {
    const { tag, rows } = await fixture();
    const seen: number[] = [];
    let after: number | undefined;
    for (let page = 0; page < 3; page++) {
      const result = await listAudit(db, { action: `${tag}.*` }, { after, limit: 2 });
      expect(result.total).toBe(5);
      seen.push(...result.items.map((r) => r.seq));
      if (page < 2) expect(result.nextCursor).not.toBeNull();
      else expect(result.nextCursor).toBeNull();
      after = result.items.at(-1)?.seq;
    }
    expect(seen).toEqual(rows.map((r) => r.seq).reverse());
  });
});

describe("exportAuditCsv", () => {
  it("streams every matching row, oldest first, escaped and guarded against formulas", async () => {
    const tag = newTag();
    await recordAll([
      { action: `${tag}.a`, target: { type: "doc", id: '=HYPERLINK("http://evil")' } },
      { action: `${tag}.b`, metadata: { note: 'comma, "quote"\nnewline' } },
      { action: `${tag}.c`, target: { type: "doc", id: "two\nlines" } },
      { action: `${tag}.d` },
      { action: `${tag}.e` },
    ]);
    const rows = await rowsTagged(tag);
    const text = await new Response(exportAuditCsv(db, { action: `${tag}.*` }, 2)).text();
    expect(text.startsWith("seq,id,occurred_at,actor_type,actor_id,action,outcome,")).toBe(true);
    expect(text.endsWith("\r\n")).toBe(true);
    const records = text.split(/\r\n(?=\d|$)/).filter(Boolean);
    expect(records).toHaveLength(1 + rows.length);
    expect(records.slice(1).map((r) => Number(r.split(",")[0]))).toEqual(rows.map((r) => r.seq));
    expect(text).toContain(`"'=HYPERLINK(""http://evil"")"`);
    expect(text).toContain('"{""note"":""comma, \\""quote\\""\\nnewline""}"');
    expect(text).toContain(',"two\nlines",');
  });

  it("writes only the header when nothing matches", async () => {
    const text = await new Response(exportAuditCsv(db, { action: `${newTag()}.*` })).text();
    expect(text.split("\r\n").filter(Boolean)).toHaveLength(1);
  });
});

describe("GET /api/admin/audit*", () => {
  const app = createApp();

  async function signedIn(role: Role) {
    const [user] = await db
      .insert(users)
      .values({
        email: `audit-${role}-${crypto.randomUUID()}@example.test`,
        fullName: "Audit Test",
        role,
        passwordHash: "unused",
      })
      .returning();
    if (!user) throw new Error("user insert failed");
    const tokens = await startSession(db, config, user, {});
    return { headers: { authorization: `Bearer ${tokens.access_token}` } };
  }

  it("refuses callers without a session (401) or without admin/viewer (403)", async () => {
    for (const path of ["/api/admin/audit", "/api/admin/audit/export", "/api/admin/audit/verify"]) {
      expect((await serve(app, path)).status).toBe(401);
      const res = await serve(app, path, await signedIn("user"));
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
    }
  });

  it("lists with filters and a cursor for a viewer", async () => {
    const tag = newTag();
    await recordAll([{ action: `${tag}.a` }, { action: `${tag}.b` }, { action: `${tag}.c` }]);
    const auth = await signedIn("viewer");
    const res = await serve(app, `/api/admin/audit?action=${tag}.*&limit=2`, auth);
    expect(res.status).toBe(200);
    const page = (await res.json()) as {
      items: { action: string; occurred_at: string }[];
      next_cursor: string;
      total: number;
    };
    expect(page.total).toBe(3);
    expect(page.items.map((i) => i.action)).toEqual([`${tag}.c`, `${tag}.b`]);
    expect(page.items[0]?.occurred_at).toMatch(/Z$/);
    const next = await serve(app, `/api/admin/audit?action=${tag}.*&limit=2&cursor=${page.next_cursor}`, auth);
    expect(((await next.json()) as { items: { action: string }[] }).items.map((i) => i.action)).toEqual([`${tag}.a`]);
  });

  it("answers 422 naming the bad query field", async () => {
    const auth = await signedIn("admin");
    for (const [query, field] of [
      ["cursor=nope", "query.cursor"],
      ["limit=500", "query.limit"],
      ["action=DROP%20TABLE", "query.action"],
      ["from=yesterday", "query.from"],
      ["actor_type=robot", "query.actor_type"],
    ]) {
      const res = await serve(app, `/api/admin/audit?${query}`, auth);
      expect(res.status).toBe(422);
      const body = (await res.json()) as { errors: { field: string }[] };
      expect(body.errors.map((e) => e.field)).toContain(field);
    }
  });

  it("exports CSV as an attachment, and records who exported what", async () => {
    const tag = newTag();
    await recordAll([{ action: `${tag}.a` }]);
    const res = await serve(app, `/api/admin/audit/export?action=${tag}.*`, {
      headers: { ...(await signedIn("admin")).headers, "x-request-id": `export-${tag}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="audit-[\dT-]+Z\.csv"$/);
    const lines = (await res.text()).split("\r\n").filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(`${tag}.a`);
    const [exported] = await db
      .select()
      .from(auditLog)
      .where(eq(auditLog.requestId, `export-${tag}`));
    expect(exported).toMatchObject({
      action: "audit.exported",
      actorType: "user",
      metadata: { filter: { action: `${tag}.*` } },
    });
  });

  it("verifies the chain", async () => {
    const res = await serve(app, "/api/admin/audit/verify", await signedIn("admin"));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; rows_checked: number };
    expect(body.ok).toBe(true);
    expect(body.rows_checked).toBeGreaterThan(0);
  });
});

describe("audit metrics", () => {
  const app = createApp();

  it("counts every appended row in audit_events_total by action and outcome", async () => {
    const tag = newTag();
    await recordAll([
      { action: `${tag}.counted` },
      { action: `${tag}.counted` },
      { action: `${tag}.counted`, outcome: "denied" },
    ]);
    const series = (outcome: string) => `voiceassist_audit_events_total{action="${tag}.counted",outcome="${outcome}"}`;
    expect(await settledSample(series("success"), 2)).toBe(2);
    expect(await settledSample(series("denied"), 1)).toBe(1);
    expect(await scrapeSample(series("failure"))).toBeUndefined();
  });

  it("counts chain verifications (audit_chain_verifications_total) and sets audit_chain_intact", async () => {
    const [user] = await db
      .insert(users)
      .values({
        email: `audit-metrics-${crypto.randomUUID()}@example.test`,
        fullName: "Audit Metrics",
        role: "admin",
        passwordHash: "unused",
      })
      .returning();
    if (!user) throw new Error("user insert failed");
    const tokens = await startSession(db, config, user, {});
    const intact = 'voiceassist_audit_chain_verifications_total{outcome="intact"}';
    const before = (await scrapeSample(intact)) ?? 0;
    for (let i = 0; i < 2; i++) {
      const res = await serve(app, "/api/admin/audit/verify", {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      expect(await res.json()).toMatchObject({ ok: true });
    }
    expect(await settledSample(intact, before + 2)).toBe(before + 2);
    expect(await scrapeSample("voiceassist_audit_chain_intact")).toBe(1);
  });
});
