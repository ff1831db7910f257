// The local stack recovers from connections that fail, vanish or go quiet (docs/chaos.md, network-latency):
// PGlite behind its socket server, the Neon proxy's session gate in front of it (one connection at a time)
// and the /sql endpoint's pools. Each test makes the failure happen on purpose, then checks that another
// connection is answered within a bound far above the expected time.
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { createLocalNeonPool } from "../../scripts/local-stack/neon-pool.ts";
import { startNeonProxy } from "../../scripts/local-stack/neon-proxy.ts";
import { startEmbeddedPostgres } from "../../scripts/local-stack/postgres.ts";
import { SessionGate, type SessionLimits } from "../../scripts/local-stack/session-gate.ts";

const BOUND_MS = 10_000;

interface Stack {
  url: string;
  address: string;
  proxy: string;
  pool(max?: number): ReturnType<typeof createLocalNeonPool>;
  stop(): Promise<void>;
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** PGlite and a Neon proxy with the session gate, as `npm run dev` runs them, with shortened limits. */
async function startStack(sessionLimits: Partial<SessionLimits> = {}): Promise<Stack> {
  const postgres = await startEmbeddedPostgres();
  const address = new URL(postgres.url).host;
  const proxy = await startNeonProxy({ postgresAddress: address, serialiseSessions: true, sessionLimits });
  const pools: ReturnType<typeof createLocalNeonPool>[] = [];
  const stack: Stack = {
    url: postgres.url,
    address,
    proxy: proxy.hostPort,
    pool(max = 1) {
      const pool = createLocalNeonPool({ connectionString: postgres.url, max }, proxy.hostPort);
      pools.push(pool);
      return pool;
    },
    async stop() {
      await Promise.allSettled(pools.map((pool) => pool.end()));
      await proxy.stop();
      await postgres.stop();
    },
  };
  stops.push(stack.stop);
  return stack;
}

function withTimeout<T>(promise: Promise<T>, ms = BOUND_MS): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms)),
  ]);
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${BOUND_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function startupMessage(body: string): Buffer {
  const fields = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(body, "latin1")]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(4 + fields.length);
  return Buffer.concat([length, fields]);
}

function queryMessage(text: string): Buffer {
  const body = Buffer.from(`${text}\0`, "utf8");
  const header = Buffer.alloc(5);
  header.write("Q", 0, "latin1");
  header.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

const STARTUP = startupMessage("user\0postgres\0database\0postgres\0\0");
// ReadyForQuery: idle, in a transaction.
const READY_IDLE = "Z\0\0\0\u0005I";
const READY_IN_TRANSACTION = "Z\0\0\0\u0005T";

/** A WebSocket through the proxy that speaks the wire protocol by hand (a client the Neon driver is not). */
async function rawConnection(stack: Stack) {
  const ws = new WebSocket(`ws://${stack.proxy}/v1?address=${stack.address}`);
  let received = "";
  let closed = false;
  ws.on("message", (data: Buffer) => {
    received += data.toString("latin1");
  });
  ws.on("close", () => {
    closed = true;
  });
  ws.on("error", () => {});
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    send: (bytes: Buffer) => ws.send(bytes),
    received: () => received,
    closed: () => closed,
    /** Gone without a word, as a Worker whose request was cancelled. */
    vanish: () => ws.terminate(),
  };
}

async function count(stack: Stack, table: string): Promise<number> {
  const pool = stack.pool();
  return (await withTimeout(pool.query(`select count(*)::int as n from ${table}`))).rows[0].n;
}

describe("the local stack recovers", () => {
  it("keeps serving other connections after one message fails inside PGlite", async () => {
    const stack = await startStack();
    const pool = stack.pool();
    await pool.query("select 1");
    // No terminating byte: PGlite reports FATAL 08P01 and then throws (ExitStatus) out of execProtocolRawStream,
    // which left pglite-socket's queue "processing" for good: nobody was answered again.
    const broken = await rawConnection(stack);
    broken.send(startupMessage("user\0postgres\0database\0postgres\0"));
    await eventually(() => broken.received().includes("FATAL"), "the FATAL error");
    expect((await withTimeout(pool.query("select 'still served' as answer"))).rows).toEqual([
      { answer: "still served" },
    ]);
    // Postgres closes a connection after FATAL; the proxy does it for PGlite.
    await eventually(broken.closed, "the failed connection closed");
  });

  it("never gives the backend to a connection that closed while it waited", async () => {
    const stack = await startStack({ waitMs: 1_000 });
    const holder = await stack.pool().connect();
    await holder.query("begin");
    // Two messages queued behind the transaction: before the fix, the second one took the gate after the
    // connection had gone (once the first one's wait timer fired), and no one ever released it.
    const gone = await rawConnection(stack);
    gone.send(STARTUP);
    gone.send(queryMessage("select 1"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    gone.vanish();
    await holder.query("commit");
    holder.release();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect((await withTimeout(stack.pool().query("select 'next' as answer"))).rows).toEqual([{ answer: "next" }]);
  });

  it("rolls back the transaction of a client that vanishes mid-transaction and serves the next one", async () => {
    const stack = await startStack();
    await stack.pool().query("create table vanished (id int)");
    const client = await rawConnection(stack);
    client.send(STARTUP);
    await eventually(() => client.received().includes(READY_IDLE), "the session started");
    client.send(queryMessage("begin; insert into vanished values (1)"));
    await eventually(() => client.received().includes(READY_IN_TRANSACTION), "the insert ran");
    client.vanish();
    expect(await count(stack, "vanished")).toBe(0);
  });

  it("ends a session left idle in a transaction, rolls it back and serves the next connection", async () => {
    const stack = await startStack({ idleInTransactionMs: 500 });
    await stack.pool().query("create table idle (id int)");
    const quiet = await stack.pool().connect();
    const errors: { code?: string }[] = [];
    quiet.on("error", (error) => errors.push(error as { code?: string }));
    await quiet.query("begin");
    await quiet.query("insert into idle values (1)");
    // The client neither commits nor closes (a Worker stuck on something else, a lost close).
    expect(await count(stack, "idle")).toBe(0);
    await eventually(() => errors.length > 0, "the idle session told");
    expect(errors[0]).toMatchObject({ code: "25P03" });
    quiet.release(true);
  });

  it("answers /sql with 57P03 when its query waited too long for the backend, and keeps running", async () => {
    const stack = await startStack({ waitMs: 500 });
    const post = async (query: string) => {
      const response = await fetch(`http://${stack.proxy}/sql`, {
        method: "POST",
        headers: { "Neon-Connection-String": stack.url },
        body: JSON.stringify({ query, params: [] }),
      });
      return { status: response.status, body: (await response.json()) as { code?: string; rows?: unknown[] } };
    };
    // The endpoint's pool keeps this connection: the next query waits on a connection already open.
    expect(await post("select 1 as one")).toMatchObject({ status: 200, body: { rows: [{ one: "1" }] } });
    const holder = await stack.pool().connect();
    await holder.query("begin");
    // Before the fix the refused connection's "error" had no listener on the checked-out pool client and
    // crashed the process: in `npm run dev`, PGlite, the Neon proxy and the Upstash server all went with it.
    expect(await withTimeout(post("select 2 as two"))).toMatchObject({ status: 400, body: { code: "57P03" } });
    await holder.query("commit");
    holder.release();
    expect(await withTimeout(post("select 3 as three"))).toMatchObject({
      status: 200,
      body: { rows: [{ three: "3" }] },
    });
  });

  it("never runs a /sql statement whose caller gave up while it waited for the backend", async () => {
    const stack = await startStack();
    const sql = (query: string, signal?: AbortSignal) =>
      fetch(`http://${stack.proxy}/sql`, {
        method: "POST",
        headers: { "Neon-Connection-String": stack.url },
        body: JSON.stringify({ query, params: [] }),
        signal,
      });
    expect((await sql("create table abandoned (id int)")).status).toBe(200);
    const holder = await stack.pool().connect();
    await holder.query("begin");
    // The Worker's fetch times out (15 s in the app) while its INSERT waits behind a slow transaction. Before
    // the fix the INSERT still ran once the gate opened: the Worker had answered 503, and the upload it retried
    // found its row already there (a document that never got its ingestion message).
    await expect(sql("insert into abandoned values (1)", AbortSignal.timeout(300))).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await holder.query("commit");
    holder.release();
    // The gate is first come, first served: a statement still queued would have run before this one.
    const response = await withTimeout(sql("select count(*)::int as n from abandoned"));
    expect(await response.json()).toMatchObject({ rows: [{ n: "0" }] });
  });
});

it("keeps answering /sql after more callers gave up than its pool has connections", async () => {
  // slo-outage's SIGSTOP: every Worker fetch of the outage times out at once, hundreds of abandoned statements.
  const stack = await startStack();
  const sql = (query: string, signal?: AbortSignal) =>
    fetch(`http://${stack.proxy}/sql`, {
      method: "POST",
      headers: { "Neon-Connection-String": stack.url },
      body: JSON.stringify({ query, params: [] }),
      signal,
    });
  const holder = await stack.pool().connect();
  await holder.query("begin");
  const abandoned = Array.from({ length: 40 }, () => sql("select 1", AbortSignal.timeout(300)).catch(() => undefined));
  await Promise.all(abandoned);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await holder.query("commit");
  holder.release();
  for (let i = 0; i < 12; i++) {
    const response = await withTimeout(sql(`select ${i} as i`));
    expect(response.status).toBe(200);
  }
});

describe("SessionGate", () => {
  it("a wait given up before its limit never takes another connection's place", async () => {
    vi.useFakeTimers();
    const gate = new SessionGate(1_000);
    const [holder, leaver, next] = [{}, {}, {}];
    await gate.acquire(holder);
    const leaverWait = gate.acquire(leaver);
    await vi.advanceTimersByTimeAsync(500);
    let granted = false;
    void gate.acquire(next).then(() => {
      granted = true;
    });
    gate.leave(leaver);
    await expect(leaverWait).rejects.toThrow(/closed/);
    // Past the leaver's limit, before next's: the leaver's timer must not drop next from the queue.
    await vi.advanceTimersByTimeAsync(600);
    gate.release(holder);
    await vi.advanceTimersByTimeAsync(0);
    expect(granted).toBe(true);
  });

  it("refuses a wait at its limit, and only the holder can release", async () => {
    vi.useFakeTimers();
    const gate = new SessionGate(1_000);
    const [holder, waiter] = [{}, {}];
    await gate.acquire(holder);
    const wait = gate.acquire(waiter);
    gate.release(waiter);
    const refused = expect(wait).rejects.toThrow(/waited 1000 ms/);
    await vi.advanceTimersByTimeAsync(1_000);
    await refused;
    gate.release(holder);
    await expect(gate.acquire(waiter)).resolves.toBeUndefined();
  });
});
