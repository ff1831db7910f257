import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createLocalServer } from "../scripts/local-stack/http.ts";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A local HTTP endpoint that records what it receives (Sentry envelopes, traced outbound calls),
 * so tests inside workerd can assert on what really left the Worker. GET /__received lists it.
 */
export async function startReceiver(): Promise<{ url: string; stop(): Promise<void> }> {
  const received: ReceivedRequest[] = [];
  const server: Server = createLocalServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url?.startsWith("/__received")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(received));
        return;
      }
      received.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
