import { describe, expect, it } from "vitest";
import { appWithProbes, received, serve, stack } from "./harness.ts";

const app = appWithProbes();

/** A Sentry envelope is newline-delimited JSON: header, item header, item payload. */
const parseEnvelope = (body: string) =>
  body
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));

describe("Sentry (toucan-js) when SENTRY_DSN is set", () => {
  it("sends an envelope for a 500 with release, environment, request id, trace id and no PII", async () => {
    const dsn = `${stack().receiverUrl.replace("http://", "http://publickey@")}/42`;
    const res = await serve(
      app,
      "/__probe/boom",
      { headers: { "x-request-id": "sentry-test-0001", cookie: "session=abc", authorization: "Bearer secret" } },
      { SENTRY_DSN: dsn, GIT_COMMIT: "abc1234" },
    );
    expect(res.status).toBe(500);
    const envelopes = (await received()).filter((r) => r.path.startsWith("/api/42/envelope/"));
    const items = envelopes
      .map((e) => parseEnvelope(e.body))
      .find((parts) => parts[2]?.tags?.request_id === "sentry-test-0001");
    expect(items).toBeDefined();
    const event = items?.[2];
    expect(event.release).toBe("voiceassist@0.1.0+abc1234");
    expect(event.environment).toBe("test");
    expect(event.tags.trace_id).toBe(res.headers.get("traceparent")?.split("-")[1]);
    expect(event.exception.values[0].value).toContain("database exploded");
    const raw = JSON.stringify(event);
    expect(raw).not.toContain("jane.doe@example.org");
    expect(raw).not.toContain("session=abc");
    expect(raw).not.toContain("Bearer secret");
  });

  it("sends nothing for a 4xx", async () => {
    const dsn = `${stack().receiverUrl.replace("http://", "http://publickey@")}/43`;
    await serve(app, "/no/such", { headers: { "x-request-id": "sentry-test-0002" } }, { SENTRY_DSN: dsn });
    expect((await received()).filter((r) => r.path.startsWith("/api/43/"))).toHaveLength(0);
  });
});
