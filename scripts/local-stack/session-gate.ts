// PGlite is one Postgres backend shared by every socket, and pglite-socket interleaves connections
// message by message: two clients mid extended-protocol exchange (Parse/Bind/Execute/Sync) or mid
// transaction corrupt each other ("invalid cursor name"). This gate gives one connection at a time the
// backend from its first message until Postgres reports it idle again (ReadyForQuery 'I').

const WAIT_LIMIT_MS = 30_000;
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export class SessionGate {
  private holder: object | undefined;
  private readonly waiting: { owner: object; grant: () => void }[] = [];

  /** Resolves once `owner` holds the gate; rejects after WAIT_LIMIT_MS so nothing hangs forever. */
  acquire(owner: object): Promise<void> {
    if (this.holder === owner) return Promise.resolve();
    if (!this.holder) {
      this.holder = owner;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const entry = {
        owner,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        reject(
          new Error(`waited ${WAIT_LIMIT_MS} ms for the embedded Postgres (another connection holds a transaction)`),
        );
      }, WAIT_LIMIT_MS);
      this.waiting.push(entry);
    });
  }

  release(owner: object): void {
    if (this.holder !== owner) {
      const queued = this.waiting.findIndex((w) => w.owner === owner);
      if (queued >= 0) this.waiting.splice(queued, 1);
      return;
    }
    const next = this.waiting.shift();
    this.holder = next?.owner;
    next?.grant();
  }
}

/**
 * Watches the server→client byte stream of one connection and calls `onIdle` at every ReadyForQuery
 * whose status is 'I' (no transaction open). Handles messages split across chunks.
 */
export function idleWatcher(onIdle: () => void) {
  let buffer: Buffer = Buffer.alloc(0);
  let expectSslAnswer = false;
  return {
    /** Tell the watcher what the client sent: an SSLRequest is answered by one unframed byte. */
    clientSent(chunk: Buffer) {
      if (chunk.subarray(0, 8).equals(SSL_REQUEST)) expectSslAnswer = true;
    },
    serverSent(chunk: Buffer) {
      buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
      if (expectSslAnswer && buffer.length > 0) {
        buffer = buffer.subarray(1);
        expectSslAnswer = false;
      }
      while (buffer.length >= 5) {
        const length = buffer.readUInt32BE(1);
        if (buffer.length < 1 + length) break;
        if (buffer[0] === 0x5a /* Z */ && buffer[5] === 0x49 /* I */) onIdle();
        buffer = buffer.subarray(1 + length);
      }
    },
  };
}
