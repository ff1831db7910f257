import { randomUUID } from "node:crypto";
import { Client, neon, neonConfig, type Pool } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type LocalStack, startLocalStack } from "../../scripts/local-stack/index.ts";
import { createLocalNeonPool } from "../../scripts/local-stack/neon-pool.ts";
import { startNeonProxy } from "../../scripts/local-stack/neon-proxy.ts";

// The real Neon driver (Pool over the WebSocket proxy, neon() over the HTTP endpoint) against PGlite,
// and against the Postgres in TEST_DATABASE_URL when it is set.
const targets = [
  { name: "PGlite", databaseUrl: undefined },
  { name: "TEST_DATABASE_URL", databaseUrl: process.env.TEST_DATABASE_URL || undefined },
];

describe.each(targets)("Neon proxy against $name", ({ name, databaseUrl }) => {
  const skip = name !== "PGlite" && !databaseUrl;
  let stack: LocalStack;
  let pool: Pool;
  let url: string;
  let proxy: string;
  const table = `neon_proxy_test_${randomUUID().replaceAll("-", "")}`;
  const sql = () => neon(url);

  beforeAll(async () => {
    if (skip) return;
    stack = await startLocalStack({ databaseUrl, redisUrl: "redis://127.0.0.1:1" });
    url = stack.env.DATABASE_URL!;
    proxy = stack.env.NEON_LOCAL_PROXY!;
    // Global, like the app sets it; describe blocks run one after another, so each points it at its stack.
    neonConfig.fetchEndpoint = `http://${proxy}/sql`;
    pool = createLocalNeonPool({ connectionString: url }, proxy);
    await pool.query(`create table ${table} (id int primary key, note text)`);
  });

  afterAll(async () => {
    if (skip) return;
    await pool.query(`drop table if exists ${table}`);
    await pool.end();
    await stack.stop();
  });

  describe.skipIf(skip)(`(${skip ? "skipped: TEST_DATABASE_URL is not set" : "running"})`, () => {
    it("runs queries through a Pool, with parsed types", async () => {
      const { rows } = await pool.query(
        `select $1::int as n, true as yes, '{"a":[1,2]}'::jsonb as doc,
                '2024-05-06T07:08:09Z'::timestamptz as at, null as nothing`,
        [7],
      );
      expect(rows).toEqual([
        { n: 7, yes: true, doc: { a: [1, 2] }, at: new Date("2024-05-06T07:08:09Z"), nothing: null },
      ]);
    });

    it("keeps a Pool transaction on one connection and rolls it back", async () => {
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query(`insert into ${table} values (1, 'rolled back')`);
        await client.query("rollback");
      } finally {
        client.release();
      }
      expect((await pool.query(`select count(*)::int as n from ${table}`)).rows[0].n).toBe(0);
    });

    it("lets a Client end (the proxy closes the connection after Terminate)", async () => {
      const client = new Client(url);
      Object.assign(client.neonConfig, {
        webSocketConstructor: WebSocket,
        wsProxy: (host: string, port: number) => `${proxy}/v1?address=${host}:${port}`,
        useSecureWebSocket: false,
        pipelineTLS: false,
        pipelineConnect: false,
      });
      await client.connect();
      expect((await client.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      await expect(withTimeout(client.end(), 3_000)).resolves.toBeUndefined();
    });

    it("answers neon() over HTTP with parameters and parsed types", async () => {
      const rows = await sql()`select ${41}::int + 1 as answer, ${"héllo"}::text as greeting,
        false as no, '{"k":"v"}'::json as doc, '2024-01-02T03:04:05.678Z'::timestamptz as at,
        null::text as nothing, 9007199254740993::int8 as big, 1.50::numeric as price,
        array['a','b'] as tags, '\\x0102'::bytea as bytes`;
      expect(rows).toEqual([
        {
          answer: 42,
          greeting: "héllo",
          no: false,
          doc: { k: "v" },
          at: new Date("2024-01-02T03:04:05.678Z"),
          nothing: null,
          big: "9007199254740993",
          price: "1.50",
          tags: ["a", "b"],
          bytes: Buffer.from([1, 2]),
        },
      ]);
    });

    it("supports array mode and full results", async () => {
      const arrays = neon(url, { arrayMode: true });
      expect(await arrays.query("select 1 as a, 'x' as b")).toEqual([[1, "x"]]);
      const full = await sql().query("select $1::int as a", [5], { fullResults: true });
      expect(full.rows).toEqual([{ a: 5 }]);
      expect(full.command).toBe("SELECT");
      expect(full.rowCount).toBe(1);
      expect(full.fields[0]).toMatchObject({ name: "a", dataTypeID: 23 });
    });

    it("commits a transaction batch", async () => {
      const db = sql();
      const [inserted, selected] = await db.transaction([
        db`insert into ${db.unsafe(table)} values (10, 'kept') returning id`,
        db`select note from ${db.unsafe(table)} where id = 10`,
      ]);
      expect(inserted).toEqual([{ id: 10 }]);
      expect(selected).toEqual([{ note: "kept" }]);
    });

    it("rolls a transaction batch back when a statement fails", async () => {
      const db = sql();
      const batch = db.transaction([
        db`insert into ${db.unsafe(table)} values (20, 'first')`,
        db`insert into ${db.unsafe(table)} values (20, 'duplicate')`,
      ]);
      await expect(batch).rejects.toMatchObject({ name: "NeonDbError", code: "23505" });
      expect(await db`select * from ${db.unsafe(table)} where id = 20`).toEqual([]);
    });

    it("applies batch options (read only, isolation level)", async () => {
      const db = sql();
      const readOnly = db.transaction([db`insert into ${db.unsafe(table)} values (30, 'no')`], {
        readOnly: true,
        isolationLevel: "Serializable",
      });
      await expect(readOnly).rejects.toMatchObject({ code: "25006" });
      const results = await db.transaction([db`show transaction_isolation`], { isolationLevel: "RepeatableRead" });
      expect(results).toEqual([[{ transaction_isolation: "repeatable read" }]]);
    });

    it("surfaces Postgres errors with their code and fields", async () => {
      await expect(sql()`select 1/0`).rejects.toMatchObject({
        name: "NeonDbError",
        code: "22012",
        message: "division by zero",
      });
      await expect(sql().query("selec 1")).rejects.toMatchObject({ code: "42601", position: "1" });
      await expect(sql().query("select 1; select 2")).rejects.toMatchObject({ code: "42601" });
    });

    it("answers malformed requests with 400 JSON errors", async () => {
      const post = (body: string, headers: Record<string, string>) =>
        fetch(`http://${proxy}/sql`, { method: "POST", body, headers });
      const missingHeader = await post(JSON.stringify({ query: "select 1" }), {});
      expect(missingHeader.status).toBe(400);
      expect(((await missingHeader.json()) as { message: string }).message).toMatch(/Neon-Connection-String/);
      const badJson = await post("{", { "Neon-Connection-String": url });
      expect(badJson.status).toBe(400);
      const noQuery = await post(JSON.stringify({ params: [] }), { "Neon-Connection-String": url });
      expect(noQuery.status).toBe(400);
      const otherDatabase = await post(JSON.stringify({ query: "select 1" }), {
        "Neon-Connection-String": "postgres://postgres@127.0.0.1:1/other",
      });
      expect(otherDatabase.status).toBe(400);
      expect(((await otherDatabase.json()) as { message: string }).message).toMatch(/only serves/);
    });

    it("cancels a slow statement with SQLSTATE 57014 and keeps serving", async () => {
      const slowProxy = await startNeonProxy({ postgresAddress: new URL(url).host, statementTimeoutMs: 200 });
      neonConfig.fetchEndpoint = `http://${slowProxy.hostPort}/sql`;
      try {
        const started = Date.now();
        await expect(sql()`select pg_sleep(1.5)`).rejects.toMatchObject({ code: "57014" });
        // PGlite runs in this process: a running statement blocks the event loop, so the timeout can only
        // be reported once it ends. A Postgres server cancels it.
        if (name !== "PGlite") expect(Date.now() - started).toBeLessThan(1_000);
        expect(await sql()`select 1 as still`).toEqual([{ still: 1 }]);
      } finally {
        neonConfig.fetchEndpoint = `http://${proxy}/sql`;
        await slowProxy.stop();
      }
    });

    it("refuses WebSocket connections to any other address", async () => {
      const ws = new WebSocket(`ws://${proxy}/v1?address=127.0.0.1:1`);
      const status = await new Promise((resolve) =>
        ws.on("unexpected-response", (_request, response) => resolve(response.statusCode)),
      );
      expect(status).toBe(403);
    });
  });
});

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms)),
  ]);
}
