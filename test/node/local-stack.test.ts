import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../scripts/local-stack/index.ts";
import { createLocalNeonPool } from "../../scripts/local-stack/neon-pool.ts";
import { startNeonProxy } from "../../scripts/local-stack/neon-proxy.ts";
import { startUpstashServer } from "../../scripts/local-stack/upstash-server.ts";

/** A port nothing listens on: bind a free one, then release it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function accepts(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(":");
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function query(stack: LocalStack, text: string) {
  const pool = createLocalNeonPool({ connectionString: stack.env.DATABASE_URL! }, stack.env.NEON_LOCAL_PROXY!);
  try {
    return (await pool.query(text)).rows;
  } finally {
    await pool.end();
  }
}

/** One HTTP/1.1 connection kept alive across requests, as workerd's connection pool keeps them. */
function keptAliveConnection(hostPort: string) {
  const [host, port] = hostPort.split(":");
  const socket = connect({ host, port: Number(port) });
  socket.setEncoding("utf8");
  let buffered = "";
  let closed = false;
  let wake = () => {};
  socket.on("data", (chunk: string) => {
    buffered += chunk;
    wake();
  });
  const onClosed = () => {
    closed = true;
    wake();
  };
  socket.on("end", onClosed);
  socket.on("close", onClosed);
  socket.on("error", () => {});
  return {
    get closed() {
      return closed;
    },
    /** Sends GET path on this connection; resolves with the response head. */
    async get(path: string): Promise<string> {
      if (closed) throw new Error("the server closed the connection");
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostPort}\r\n\r\n`);
      for (;;) {
        const end = buffered.indexOf("\r\n\r\n");
        if (end >= 0) {
          const head = buffered.slice(0, end);
          const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
          if (buffered.length >= end + 4 + length) {
            buffered = buffered.slice(end + 4 + length);
            return head;
          }
        }
        if (closed) throw new Error("the server closed the connection");
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
    close: () => socket.destroy(),
  };
}

// Node's default server.keepAliveTimeout: an idle kept-alive connection is closed after this.
const NODE_KEEP_ALIVE_TIMEOUT_MS = 5_000;

describe("startLocalStack", () => {
  const started: LocalStack[] = [];
  const start = async (options: Parameters<typeof startLocalStack>[0]) => {
    const stack = await startLocalStack(options);
    started.push(stack);
    return stack;
  };
  afterAll(() => Promise.all(started.map((stack) => stack.stop())));

  it("starts in-memory PGlite with pgvector and the Neon proxy, and exposes the Worker's variables", async () => {
    const stack = await start({ redisUrl: process.env.REDIS_URL });
    expect(stack.env.DATABASE_URL).toMatch(/^postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/postgres$/);
    expect(stack.env.NEON_LOCAL_PROXY).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(stack.databaseHasVector).toBe(true);
    expect(await query(stack, "select extname from pg_extension where extname = 'vector'")).toEqual([
      { extname: "vector" },
    ]);
    expect(stack.summary.join("\n")).toMatch(/PGlite[\s\S]*Neon proxy/);
    if (stack.redis) {
      expect(Object.keys(stack.env).sort()).toEqual(
        ["DATABASE_URL", "NEON_LOCAL_PROXY", "UPSTASH_REDIS_REST_TOKEN", "UPSTASH_REDIS_REST_URL"].sort(),
      );
      expect(stack.env.UPSTASH_REDIS_REST_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(stack.env.UPSTASH_REDIS_REST_TOKEN!.length).toBeGreaterThanOrEqual(32);
    } else {
      expect(Object.keys(stack.env).sort()).toEqual(["DATABASE_URL", "NEON_LOCAL_PROXY"]);
    }
  });

  it("stops everything, and a second stop is a no-op", async () => {
    const stack = await start({ redisUrl: process.env.REDIS_URL });
    const postgres = new URL(stack.env.DATABASE_URL!).host;
    const addresses = [postgres, stack.env.NEON_LOCAL_PROXY!];
    if (stack.redis) addresses.push(new URL(stack.env.UPSTASH_REDIS_REST_URL!).host);
    for (const address of addresses) expect(await accepts(address)).toBe(true);
    await stack.stop();
    await stack.stop();
    for (const address of addresses) expect(await accepts(address)).toBe(false);
  });

  // workerd closes a pooled connection after about as long idle as Node's default keep-alive timeout (5 s);
  // on a busy machine it may reuse one just as Node closes it, and the request fails in the Worker with
  // "Network connection lost". These servers never close an idle connection: the client does.
  it("leaves closing idle kept-alive connections to the client (the Neon proxy and the Upstash server)", async () => {
    // The proxy dials Postgres only for a WebSocket, so no database is needed here.
    const proxy = await startNeonProxy({ postgresAddress: "127.0.0.1:1" });
    const upstash = await startUpstashServer({
      redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
      token: "keep-alive-test-token",
    }).catch(() => undefined);
    const servers = [proxy.hostPort, ...(upstash ? [new URL(upstash.url).host] : [])];
    const connections = servers.map(keptAliveConnection);
    try {
      for (const connection of connections) {
        const head = await connection.get("/keep-alive-probe");
        expect(head).toMatch(/^HTTP\/1\.1 40[14] /);
        expect(head).toMatch(/^connection: keep-alive$/im);
        // A server with an idle timeout announces it ("Keep-Alive: timeout=5").
        expect(head).not.toMatch(/^keep-alive:/im);
      }
      await sleep(NODE_KEEP_ALIVE_TIMEOUT_MS + 1_000);
      for (const connection of connections) {
        expect(connection.closed).toBe(false);
        expect(await connection.get("/keep-alive-probe")).toMatch(/^HTTP\/1\.1 40[14] /);
      }
    } finally {
      for (const connection of connections) connection.close();
      await Promise.all([proxy.stop(), upstash?.stop()]);
    }
  });

  it("turns L2 off with a notice when Redis is not reachable", async () => {
    const port = await closedPort();
    const stack = await start({ redisUrl: `redis://127.0.0.1:${port}` });
    expect(stack.redis).toBe(false);
    expect(stack.env.UPSTASH_REDIS_REST_URL).toBeUndefined();
    expect(stack.env.UPSTASH_REDIS_REST_TOKEN).toBeUndefined();
    expect(stack.notices).toEqual([
      expect.stringMatching(new RegExp(`Redis not reachable at redis://127.0.0.1:${port}.*L2 cache is off`)),
    ]);
  });

  it("keeps PGlite data in dataDir across restarts", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "local-stack-"));
    try {
      const first = await startLocalStack({ dataDir, redisUrl: "redis://127.0.0.1:1" });
      await query(first, "create table kept (note text); insert into kept values ('still here')");
      await first.stop();
      const second = await startLocalStack({ dataDir, redisUrl: "redis://127.0.0.1:1" });
      try {
        expect(await query(second, "select note from kept")).toEqual([{ note: "still here" }]);
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("fails with a clear error when databaseUrl is not reachable", async () => {
    const port = await closedPort();
    await expect(startLocalStack({ databaseUrl: `postgres://postgres:secret@127.0.0.1:${port}/app` })).rejects.toThrow(
      new RegExp(`Postgres at postgres://postgres:\\*\\*\\*@127.0.0.1:${port}/app is not reachable`),
    );
  });

  it.skipIf(!process.env.TEST_DATABASE_URL)("uses the Postgres in databaseUrl instead of PGlite", async () => {
    const databaseUrl = process.env.TEST_DATABASE_URL!;
    const stack = await start({ databaseUrl, redisUrl: "redis://127.0.0.1:1" });
    expect(stack.env.DATABASE_URL).toBe(databaseUrl);
    const available = await query(stack, "select 1 from pg_available_extensions where name = 'vector'");
    expect(stack.databaseHasVector).toBe(available.length > 0);
    expect(stack.summary.join("\n")).not.toMatch(/PGlite/);
  });
});
