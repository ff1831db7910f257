import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";

/**
 * An HTTP server for the Worker to call that never closes a connection on a timer of its own: the client
 * closes idle ones. Node's default keepAliveTimeout closes a kept-alive connection after 5 s idle, and workerd
 * drops an idle pooled connection after nearly as long (between 4.5 and 4.9 s here), so on a busy machine
 * workerd can send a request on a connection just as Node closes it: the Worker gets "Network connection lost"
 * (from the Neon proxy's /sql: "Postgres could not be reached"). headersTimeout and requestTimeout are off too:
 * these servers listen on 127.0.0.1 only, and a slow machine must not turn into a dropped request.
 */
export function createLocalServer(listener?: RequestListener): Server {
  return createServer({ keepAliveTimeout: 0, headersTimeout: 0, requestTimeout: 0 }, listener);
}

/** Thrown while reading a request; carries the HTTP status to answer with. */
export class RequestError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Reads a request body, refusing one over maxBytes (413). */
export async function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new RequestError(413, `request body exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Reads and parses a JSON body: 413 when over maxBytes, 400 when not JSON. */
export async function readJsonBody(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(request, maxBytes);
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new RequestError(400, "request body is not valid JSON");
  }
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  };
  // After a 413 the unread rest of the body is still on the socket: close it rather than read it as a request.
  if (status === 413) headers.connection = "close";
  response.writeHead(status, headers);
  response.end(text);
}

/** Listens on a free port of 127.0.0.1 and returns it. */
export function listenOnFreePort(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      const address = server.address();
      if (address && typeof address === "object") resolve(address.port);
      else reject(new Error("server has no TCP address"));
    });
  });
}

/** Closes a server and every connection still open on it (keep-alive clients would otherwise hold it open). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
