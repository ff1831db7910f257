import { describe, expect, it, vi } from "vitest";
import { appWithProbes, received, serve } from "./harness.ts";

const app = appWithProbes();
const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("request id and trace context", () => {
  it("keeps a well-formed X-Request-Id and echoes it", async () => {
    const res = await serve(app, "/health", { headers: { "x-request-id": "client-req-0001" } });
    expect(res.headers.get("x-request-id")).toBe("client-req-0001");
  });

  it("generates a request id when absent", async () => {
    const res = await serve(app, "/health");
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("continues the caller's trace and echoes tracestate", async () => {
    const res = await serve(app, "/health", { headers: { traceparent: incoming, tracestate: "congo=t61rcWkgMzE" } });
    expect(res.headers.get("traceparent")).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(res.headers.get("traceparent")).not.toBe(incoming);
    expect(res.headers.get("tracestate")).toBe("congo=t61rcWkgMzE");
  });

  it("hands the trace to outbound calls, as a child span of this request", async () => {
    const res = await serve(app, "/__probe/outbound", {
      headers: { traceparent: incoming, "x-request-id": "outbound-test-01" },
    });
    expect(res.status).toBe(200);
    const call = (await received()).filter((r) => r.path === "/outbound").at(-1);
    expect(call?.headers["x-request-id"]).toBe("outbound-test-01");
    const ownSpan = res.headers.get("traceparent")?.split("-")[2];
    expect(call?.headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(call?.headers.traceparent?.split("-")[2]).not.toBe(ownSpan);
  });
});

describe("request log", () => {
  it("writes one redacted JSON line per request with route template, status and ids", async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((line: string) => lines.push(line));
    try {
      await serve(
        app,
        "/no/such/thing?email=jane@example.org",
        {
          headers: { "x-request-id": "log-test-000001", authorization: "Bearer secret-token" },
        },
        { LOG_LEVEL: "info" },
      );
    } finally {
      spy.mockRestore();
    }
    const entries = lines.map((l) => JSON.parse(l)).filter((e) => e.message === "request");
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      level: "warn",
      method: "GET",
      route: "unmatched",
      status: 404,
      request_id: "log-test-000001",
    });
    expect(entries[0].trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(typeof entries[0].duration_ms).toBe("number");
    expect(lines.join("\n")).not.toContain("jane@example.org");
    expect(lines.join("\n")).not.toContain("secret-token");
  });
});

describe("secure headers and CORS", () => {
  it("sets secure headers on every response", async () => {
    const res = await serve(app, "/health");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("strict-transport-security")).toContain("max-age=");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
  });

  it("allows only configured origins", async () => {
    const overrides = { CORS_ORIGINS: "https://app.example.org" };
    const preflight = {
      method: "OPTIONS",
      headers: { origin: "https://app.example.org", "access-control-request-method": "POST" },
    };
    const allowed = await serve(app, "/health", preflight, overrides);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.org");
    const denied = await serve(app, "/health", { headers: { origin: "https://evil.example" } }, overrides);
    expect(denied.headers.get("access-control-allow-origin")).toBeNull();
  });
});
