import { Client, Pool, type PoolClient, type PoolConfig } from "@neondatabase/serverless";
import WebSocket from "ws";

/**
 * A Neon driver Pool that reaches a local Postgres through the WebSocket proxy at proxyHostPort
 * ("127.0.0.1:PORT", see neon-proxy.ts). The proxy settings go on each client's socket rather than on the
 * global neonConfig, so several local stacks (and the app's own settings) can live in one process.
 */
export function createLocalNeonPool(config: PoolConfig & { connectionString: string }, proxyHostPort: string): Pool {
  class LocalClient extends Client {
    constructor(clientConfig?: ConstructorParameters<typeof Client>[0]) {
      super(clientConfig);
      const socket = this.neonConfig;
      socket.webSocketConstructor = WebSocket;
      socket.wsProxy = (host: string, port: number | string) => `${proxyHostPort}/v1?address=${host}:${port}`;
      socket.useSecureWebSocket = false;
      socket.pipelineTLS = false;
      socket.pipelineConnect = false;
    }
  }
  const pool = new Pool({ connectionTimeoutMillis: 5_000, ...config });
  pool.Client = LocalClient;
  // An idle client whose connection drops emits "error" on the pool; unhandled, it would crash the process.
  pool.on("error", () => {});
  // A checked-out client has no pool listener: when its connection drops (the proxy refusing a query that
  // waited too long for PGlite) its "error" crashed the whole local stack. Its query fails with it anyway.
  pool.on("connect", (client: PoolClient) => client.on("error", () => {}));
  return pool;
}
