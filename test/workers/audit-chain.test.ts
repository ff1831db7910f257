import { describe, expect, it } from "vitest";
import {
  type AuditContent,
  type ChainRow,
  canonicalContent,
  GENESIS_HASH,
  hashRow,
  verifyChain,
} from "../../src/audit/chain.ts";
import { csvCell, csvLine, decodeCursor, encodeCursor } from "../../src/audit/query.ts";
import { canonicalJson } from "../../src/json.ts";

function content(seq: number, overrides: Partial<AuditContent> = {}): AuditContent {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`,
    seq,
    occurredAt: new Date(Date.UTC(2025, 0, 1, 0, 0, seq)),
    actorType: "user",
    actorId: "u1",
    action: "auth.login",
    outcome: "success",
    targetType: "user",
    targetId: "u1",
    requestId: `req-${seq}`,
    traceId: "0af7651916cd43dd8448eb211c80319c",
    ip: "203.0.113.9",
    userAgent: "vitest",
    before: null,
    after: { role: "admin" },
    metadata: { n: seq },
    ...overrides,
  };
}

async function chainOf(length: number): Promise<ChainRow[]> {
  const rows: ChainRow[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= length; seq++) {
    const row = content(seq);
    const hash = await hashRow(prevHash, row);
    rows.push({ ...row, prevHash, hash });
    prevHash = hash;
  }
  return rows;
}

describe("canonical content", () => {
  it("sorts keys at every depth, so jsonb key order does not change the hash", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: null }], c: "x" } })).toBe(
      '{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}',
    );
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
  });

  it("writes times as ISO 8601 UTC", () => {
    expect(canonicalContent(content(1))).toContain('"occurred_at":"2025-01-01T00:00:01.000Z"');
  });

  it("hashes to 64 hex digits that depend on the previous hash and on every field", async () => {
    const row = content(1);
    const hash = await hashRow(GENESIS_HASH, row);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await hashRow(GENESIS_HASH, { ...row, metadata: { n: 1 } })).toBe(hash);
    expect(await hashRow("f".repeat(64), row)).not.toBe(hash);
    expect(await hashRow(GENESIS_HASH, { ...row, ip: "203.0.113.10" })).not.toBe(hash);
    expect(await hashRow(GENESIS_HASH, { ...row, metadata: { n: 2 } })).not.toBe(hash);
  });
});

describe("verifyChain", () => {
  it("accepts an intact chain from the genesis, and an empty one", async () => {
    const rows = await chainOf(4);
    expect(await verifyChain(rows)).toEqual({ ok: true, checked: 4, last: { seq: 4, hash: rows[3]?.hash } });
    expect(await verifyChain([])).toMatchObject({ ok: true, checked: 0 });
  });

  it("continues from the last link of a previous page", async () => {
    const rows = await chainOf(5);
    const first = await verifyChain(rows.slice(0, 2));
    if (!first.ok) throw new Error("first page should verify");
    expect(await verifyChain(rows.slice(2), first.last)).toMatchObject({ ok: true, checked: 3 });
  });

  type Tamper = (rows: ChainRow[]) => Promise<ChainRow[]> | ChainRow[];
  const cases: [string, Tamper, { seq: number; reason: string }][] = [
    [
      "an edited field",
      (r) => r.map((x) => (x.seq === 3 ? { ...x, action: "auth.logout" } : x)),
      { seq: 3, reason: "hash mismatch" },
    ],
    [
      "an edited JSON value",
      (r) => r.map((x) => (x.seq === 2 ? { ...x, after: { role: "user" } } : x)),
      { seq: 2, reason: "hash mismatch" },
    ],
    [
      "an edited time",
      (r) => r.map((x) => (x.seq === 4 ? { ...x, occurredAt: new Date(0) } : x)),
      { seq: 4, reason: "hash mismatch" },
    ],
    [
      "an edited row whose hash was recomputed",
      async (r) => {
        const edited = { ...(r[1] as ChainRow), action: "auth.logout" };
        edited.hash = await hashRow(edited.prevHash, edited);
        return r.map((x) => (x.seq === 2 ? edited : x));
      },
      { seq: 3, reason: "prev_hash does not match the previous row" },
    ],
    ["a deleted middle row", (r) => r.filter((x) => x.seq !== 3), { seq: 4, reason: "gap in seq (row deleted?)" }],
    ["a deleted first row", (r) => r.slice(1), { seq: 2, reason: "gap in seq (row deleted?)" }],
    [
      "two rows swapped",
      (r) => [r[0], r[2], r[1], r[3], r[4]] as ChainRow[],
      { seq: 3, reason: "gap in seq (row deleted?)" },
    ],
    [
      "a row relinked to another predecessor",
      async (r) => {
        const relinked = { ...(r[3] as ChainRow), prevHash: GENESIS_HASH };
        relinked.hash = await hashRow(relinked.prevHash, relinked);
        return r.map((x) => (x.seq === 4 ? relinked : x));
      },
      { seq: 4, reason: "prev_hash does not match the previous row" },
    ],
  ];

  it.each(cases)("names the first broken link after %s", async (_name, tamper, expected) => {
    const rows = await tamper(await chainOf(5));
    const verdict = await verifyChain(rows);
    expect(verdict.ok).toBe(false);
    if (verdict.ok) return;
    expect(verdict.broken).toEqual({ ...expected, id: rows.find((r) => r.seq === expected.seq)?.id });
  });
});

describe("CSV formatting", () => {
  it.each([
    [null, ""],
    ["plain", "plain"],
    [42, "42"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ["two\nlines", '"two\nlines"'],
    ["cr\rlf", '"cr\rlf"'],
    ['=HYPERLINK("http://x")', `"'=HYPERLINK(""http://x"")"`],
    ["=1+1", "'=1+1"],
    ["+1", "'+1"],
    ["-1", "'-1"],
    ["@SUM(A1)", "'@SUM(A1)"],
    ["\tcmd", "'\tcmd"],
    ["a=b", "a=b"],
    [{ k: "v,w" }, '"{""k"":""v,w""}"'],
  ])("formats %j as %s", (value, expected) => {
    expect(csvCell(value)).toBe(expected);
  });

  it("ends each line with CRLF", () => {
    expect(csvLine(["a", null, "=x"])).toBe("a,,'=x\r\n");
  });
});

describe("cursor", () => {
  it("round-trips and refuses anything else", () => {
    expect(decodeCursor(encodeCursor(12345))).toBe(12345);
    expect(decodeCursor("not a cursor")).toBeUndefined();
    expect(decodeCursor(btoa("seq:-1"))).toBeUndefined();
    expect(decodeCursor("")).toBeUndefined();
  });
});
