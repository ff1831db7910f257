import { mkdir } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedPostgres {
  /** postgres:// URL of the TCP server, for any Postgres client. */
  url: string;
  hasVector: true;
  stop(): Promise<void>;
}

// pglite-socket rejects (does not queue) connections above this; keep it well above every pool size.
const MAX_CONNECTIONS = 50;

/** Starts PGlite with pgvector, served over TCP on a free 127.0.0.1 port; in memory when dataDir is undefined. */
export async function startEmbeddedPostgres(options: { dataDir?: string } = {}): Promise<EmbeddedPostgres> {
  if (options.dataDir) await mkdir(options.dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir: options.dataDir, extensions: { vector } });
  try {
    await db.exec("CREATE EXTENSION IF NOT EXISTS vector");
    const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: MAX_CONNECTIONS });
    await server.start();
    let stopping: Promise<void> | undefined;
    return {
      url: `postgres://postgres:postgres@${server.getServerConn()}/postgres`,
      hasVector: true,
      stop() {
        stopping ??= server.stop().then(() => db.close());
        return stopping;
      },
    };
  } catch (error) {
    await db.close();
    throw new Error(`Embedded Postgres (PGlite) failed to start: ${(error as Error).message}`, { cause: error });
  }
}
