import { mkdir } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { fatalError } from "./session-gate.ts";

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
    answerFailuresInsteadOfThrowing(db);
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

/**
 * pglite-socket (0.2.17) runs every connection's messages through one queue, and when one message's
 * execProtocolRawStream throws, its queue returns without clearing its "processing" flag: PGlite never
 * answers anyone again. A malformed startup packet is enough (PGlite throws ExitStatus). So that call never
 * throws here: the failing connection gets a FATAL error instead (the Neon proxy then closes it, which makes
 * pglite-socket roll back its transaction), and every other connection is served as before.
 */
function answerFailuresInsteadOfThrowing(db: PGlite): void {
  const execute = db.execProtocolRawStream.bind(db);
  db.execProtocolRawStream = async (message, options) => {
    try {
      await execute(message, options);
    } catch (error) {
      // PGlite throws an ExitStatus (not an Error) when Postgres exits the session.
      const reason = String((error as { message?: unknown } | undefined)?.message ?? error);
      console.error(`embedded Postgres: a message failed in PGlite (${reason}); its connection is ended`);
      options.onRawData(fatalError("XX000", `embedded Postgres (PGlite) failed: ${reason}`));
    }
  };
}
