// PGlite is one Postgres backend shared by every socket, and pglite-socket interleaves connections
// message by message: two clients mid extended-protocol exchange (Parse/Bind/Execute/Sync) or mid
// transaction corrupt each other ("invalid cursor name"). This gate gives one connection at a time the
// backend from its first message until Postgres reports it idle again (ReadyForQuery 'I').

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export interface SessionLimits {
  /** How long a connection waits for the backend before it is refused (57P03). */
  waitMs: number;
  /**
   * How long the holder may sit idle inside a transaction before the proxy ends its session (25P03), as
   * Postgres's idle_in_transaction_session_timeout would: here every other connection waits behind it.
   * Shorter than waitMs, so the connections queued behind an abandoned transaction still get their turn.
   */
  idleInTransactionMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { waitMs: 30_000, idleInTransactionMs: 15_000 };

interface Waiter {
  owner: object;
  grant(): void;
  refuse(error: Error): void;
}

export class SessionGate {
  private holder: object | undefined;
  private readonly waiting: Waiter[] = [];
  private readonly waitMs: number;

  constructor(waitMs = DEFAULT_SESSION_LIMITS.waitMs) {
    this.waitMs = waitMs;
  }

  /** Resolves once `owner` holds the gate; rejects after waitMs so nothing hangs forever. */
  acquire(owner: object): Promise<void> {
    if (this.holder === owner) return Promise.resolve();
    if (!this.holder) {
      this.holder = owner;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Only ever this waiter: splice(-1) would drop another connection's place.
        const queued = this.waiting.indexOf(waiter);
        if (queued >= 0) this.waiting.splice(queued, 1);
        reject(
          new Error(`waited ${this.waitMs} ms for the embedded Postgres (another connection holds a transaction)`),
        );
      }, this.waitMs);
      const waiter: Waiter = {
        owner,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
        refuse: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiting.push(waiter);
    });
  }

  /** The holder is idle again: the next waiter gets the backend. A no-op for any other owner. */
  release(owner: object): void {
    if (this.holder !== owner) return;
    const next = this.waiting.shift();
    this.holder = next?.owner;
    next?.grant();
  }

  /**
   * The owner's connection is gone: it gives up the backend or its place in the queue. A queued wait is
   * refused now rather than left to its timer, so a closed connection never takes the gate later.
   */
  leave(owner: object): void {
    this.release(owner);
    const queued = this.waiting.findIndex((w) => w.owner === owner);
    if (queued >= 0) this.waiting.splice(queued, 1)[0]!.refuse(new Error("the connection closed while waiting"));
  }
}

/** A Postgres ErrorResponse of severity FATAL: the server ends the session after it. */
export function fatalError(code: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, "utf8");
  const header = Buffer.alloc(5);
  header.write("E", 0, "latin1");
  header.writeUInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}

export interface ServerEvents {
  /** ReadyForQuery, with its transaction status: 'I' idle, 'T' in a transaction, 'E' in a failed one. */
  ready(status: string): void;
  /** An ErrorResponse of severity FATAL or PANIC: Postgres closes the connection after it, PGlite does not. */
  fatal(): void;
}

/**
 * Watches the server→client byte stream of one connection and reports each ReadyForQuery and each FATAL
 * error. Handles messages split across chunks.
 */
export function protocolWatcher(events: ServerEvents) {
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
        if (buffer[0] === 0x5a /* Z */) events.ready(String.fromCharCode(buffer[5]!));
        else if (buffer[0] === 0x45 /* E */ && isFatal(buffer.subarray(5, 1 + length))) events.fatal();
        buffer = buffer.subarray(1 + length);
      }
    },
  };
}

/** Whether an ErrorResponse body (fields of a type byte and a C string) has severity FATAL or PANIC. */
function isFatal(body: Buffer): boolean {
  const fields = new Map<string, string>();
  for (let at = 0; at < body.length && body[at] !== 0; ) {
    const end = body.indexOf(0, at + 1);
    if (end < 0) break;
    fields.set(String.fromCharCode(body[at]!), body.toString("utf8", at + 1, end));
    at = end + 1;
  }
  // 'V' is the untranslated severity (Postgres 9.6+); 'S' may be localised, but older servers send only it.
  const severity = fields.get("V") ?? fields.get("S");
  return severity === "FATAL" || severity === "PANIC";
}
