import type { Server, ServerResponse } from "node:http";
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
 * Every other request is recorded and answered 200 `{}`, except two paths that let a test choose the answer:
 * /status/<code>[/...] answers that status (200 to 599) with a JSON body echoing the request's, and
 * /hang[/...] never answers (until the client gives up or the receiver stops).
 */
export async function startReceiver(): Promise<{ url: string; stop(): Promise<void> }> {
  const received: ReceivedRequest[] = [];
  const hanging = new Set<ServerResponse>();
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
      const status = /^\/status\/([2-5]\d\d)(?:[/?]|$)/.exec(req.url ?? "");
      if (status) {
        res.writeHead(Number(status[1]), { "content-type": "application/json" });
        res.end(JSON.stringify({ status: Number(status[1]), echo: Buffer.concat(chunks).toString("utf8") }));
        return;
      }
      if (/^\/hang(?:[/?]|$)/.test(req.url ?? "")) {
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        for (const res of hanging) res.destroy();
        server.close(() => resolve());
      }),
  };
}
