import { describe, expect, it } from "vitest";
import {
  acceptRequestId,
  childTrace,
  formatTraceparent,
  parseTraceparent,
  parseTracestate,
  traceFromHeaders,
} from "../../src/observability/trace.ts";

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("parseTraceparent", () => {
  it.each([
    [valid, { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", sampled: true }],
    [
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
      { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", sampled: false },
    ],
    // A future version may append fields; they are ignored.
    [
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", sampled: true },
    ],
  ])("accepts %s", (header, expected) => {
    expect(parseTraceparent(header)).toEqual(expected);
  });

  it.each([
    [undefined],
    [""],
    ["garbage"],
    ["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"], // upper case
    ["00-00000000000000000000000000000000-00f067aa0ba902b7-01"], // zero trace id
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"], // zero span id
    ["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], // forbidden version
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"], // v00 has 4 fields
    ["00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"], // short trace id
  ])("rejects %s", (header) => {
    expect(parseTraceparent(header)).toBeUndefined();
  });
});

describe("parseTracestate", () => {
  it("keeps valid members", () => {
    expect(parseTracestate("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")).toBe("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    expect(parseTracestate("tenant@vendor=abc")).toBe("tenant@vendor=abc");
  });
  it.each([["=novalue"], ["UPPER=1"], ["a=1,a=2"], [Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(",")]])(
    "drops %s",
    (header) => {
      expect(parseTracestate(header)).toBeUndefined();
    },
  );
});

describe("traceFromHeaders", () => {
  it("continues a valid trace with a new span of its own", () => {
    const trace = traceFromHeaders(valid, "congo=t61rcWkgMzE");
    expect(trace.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(trace.parentSpanId).toBe("00f067aa0ba902b7");
    expect(trace.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(trace.spanId).not.toBe("00f067aa0ba902b7");
    expect(trace.tracestate).toBe("congo=t61rcWkgMzE");
  });
  it("starts a new trace, dropping tracestate, when traceparent is malformed", () => {
    const trace = traceFromHeaders("00-bad", "congo=t61rcWkgMzE");
    expect(parseTraceparent(formatTraceparent(trace))).toBeDefined();
    expect(trace.parentSpanId).toBeUndefined();
    expect(trace.tracestate).toBeUndefined();
  });
  it("gives each outbound call a child span of the same trace", () => {
    const trace = traceFromHeaders(valid, null);
    const child = childTrace(trace);
    expect(child.traceId).toBe(trace.traceId);
    expect(child.parentSpanId).toBe(trace.spanId);
    expect(child.spanId).not.toBe(trace.spanId);
  });
});

describe("acceptRequestId", () => {
  it.each([["req-12345678"], ["0f8fad5b-d9cb-469f-a165-70867728950e"], ["a.b:c_d-e1"]])("keeps %s", (id) => {
    expect(acceptRequestId(id)).toBe(id);
  });
  it.each([[null], [""], ["short"], ["has space in it"], ["<script>alert(1)</script>"], ["x".repeat(129)]])(
    "replaces %s with a UUID",
    (id) => {
      expect(acceptRequestId(id)).toMatch(/^[0-9a-f-]{36}$/);
    },
  );
});
