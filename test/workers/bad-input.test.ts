import { describe, expect, it } from "vitest";
import { appWithProbes, serve } from "./harness.ts";

const app = appWithProbes();

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, code, type: `urn:voiceassist:problem:${code.toLowerCase()}` });
  expect(body.requestId).toBe(res.headers.get("x-request-id"));
  expect(typeof body.detail).toBe("string");
  return body;
}

const post = (body: BodyInit, contentType = "application/json"): RequestInit => ({
  method: "POST",
  headers: { "content-type": contentType },
  body,
});

describe("bad input always gets problem+json", () => {
  it("accepts a good body (the baseline)", async () => {
    const res = await serve(app, "/__probe/echo", post(JSON.stringify({ name: "a", count: 1 })));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "a", count: 1 });
  });

  it("malformed JSON: 400 MALFORMED_JSON", async () => {
    await expectProblem(await serve(app, "/__probe/echo", post('{"name": "a",')), 400, "MALFORMED_JSON");
  });

  it("wrong content type: 415 naming the expected type", async () => {
    const body = await expectProblem(
      await serve(app, "/__probe/echo", post("name=a", "text/plain")),
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    );
    expect(body.detail).toContain("application/json");
  });

  it("missing content type on a body: 415", async () => {
    const res = await serve(app, "/__probe/echo", { method: "POST", body: new Uint8Array([123, 125]) });
    await expectProblem(res, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("schema violation: 422 with one error per field", async () => {
    const res = await serve(app, "/__probe/echo", post(JSON.stringify({ name: "", count: -1, extra: 1 })));
    const body = await expectProblem(res, 422, "VALIDATION_FAILED");
    const fields = (body.errors as { field: string }[]).map((e) => e.field).sort();
    expect(fields).toEqual(["body.count", "body.name"]);
  });

  it("oversized body by Content-Length: 413", async () => {
    const big = JSON.stringify({ name: "x".repeat(1_100_000), count: 1 });
    const body = await expectProblem(await serve(app, "/__probe/echo", post(big)), 413, "PAYLOAD_TOO_LARGE");
    expect(body.limitBytes).toBe(1_048_576);
  });

  it("oversized streamed body without Content-Length: 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 20) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await serve(app, "/__probe/echo", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
      // @ts-expect-error workerd needs duplex for a streamed request body
      duplex: "half",
    });
    await expectProblem(res, 413, "PAYLOAD_TOO_LARGE");
  });

  it("unknown route: 404", async () => {
    const body = await expectProblem(await serve(app, "/no/such/route"), 404, "NOT_FOUND");
    expect(body.detail).toContain("/no/such/route");
  });

  it("wrong method: 405 with Allow", async () => {
    const res = await serve(app, "/health", { method: "DELETE" });
    await expectProblem(res, 405, "METHOD_NOT_ALLOWED");
    expect(res.headers.get("allow")).toContain("GET");
  });

  it("a thrown error: 500 that says nothing but the request id", async () => {
    const res = await serve(app, "/__probe/boom");
    const body = await expectProblem(res, 500, "INTERNAL");
    expect(JSON.stringify(body)).not.toContain("exploded");
    expect(JSON.stringify(body)).not.toContain("example.org");
  });

  it("bad traceparent: not an error; a fresh valid trace is started and echoed", async () => {
    const res = await serve(app, "/health", { headers: { traceparent: "00-nonsense-01" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("traceparent")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it("bad request id: not an error; replaced by a UUID and echoed", async () => {
    const res = await serve(app, "/health", { headers: { "x-request-id": "bad id <>" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("bad environment: 500 BAD_ENVIRONMENT naming the variable", async () => {
    const res = await serve(app, "/health", {}, { DATABASE_URL: undefined, LOG_LEVEL: "chatty" });
    const body = await expectProblem(res, 500, "BAD_ENVIRONMENT");
    expect(body.variables).toEqual(expect.arrayContaining(["DATABASE_URL", "LOG_LEVEL"]));
    expect(body.detail).toContain("DATABASE_URL is required");
  });

  it("a missing binding: 500 BAD_ENVIRONMENT naming the binding", async () => {
    const body = await expectProblem(await serve(app, "/health", {}, { DOCUMENTS: undefined }), 500, "BAD_ENVIRONMENT");
    expect(body.variables).toEqual(["DOCUMENTS"]);
  });
});
