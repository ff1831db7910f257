// W3C Trace Context (https://www.w3.org/TR/trace-context/): pure parsing and formatting.

export interface TraceContext {
  traceId: string;
  /** The span id of this service's own work; outbound calls name it as their parent. */
  spanId: string;
  /** The caller's span id, when a valid traceparent arrived. */
  parentSpanId?: string;
  sampled: boolean;
  tracestate?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
// tracestate: up to 32 comma-separated key=value members (W3C §3.3.1).
const TRACESTATE_MEMBER =
  /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

interface ParsedTraceparent {
  traceId: string;
  parentSpanId: string;
  sampled: boolean;
}

/** Returns undefined for anything the spec says to ignore (bad shape, version ff, all-zero ids). */
export function parseTraceparent(header: string | null | undefined): ParsedTraceparent | undefined {
  if (!header) return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, parentSpanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === "ff") return undefined;
  // Version 00 has exactly four fields; later versions may append more.
  if (version === "00" && rest !== undefined) return undefined;
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return undefined;
  return { traceId, parentSpanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

/** Returns the header unchanged when every member is valid, else undefined (it is then dropped). */
export function parseTracestate(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const members = header
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  if (members.length === 0 || members.length > 32) return undefined;
  const keys = new Set<string>();
  for (const member of members) {
    if (!TRACESTATE_MEMBER.test(member)) return undefined;
    const key = member.slice(0, member.indexOf("="));
    if (keys.has(key)) return undefined;
    keys.add(key);
  }
  return members.join(",");
}

/** Continues the caller's trace when its headers are valid, else starts a new one. */
export function traceFromHeaders(traceparent: string | null, tracestate: string | null): TraceContext {
  const parent = parseTraceparent(traceparent);
  if (!parent) return { traceId: newTraceId(), spanId: newSpanId(), sampled: true };
  const state = parseTracestate(tracestate);
  return {
    traceId: parent.traceId,
    spanId: newSpanId(),
    parentSpanId: parent.parentSpanId,
    sampled: parent.sampled,
    ...(state ? { tracestate: state } : {}),
  };
}

export function formatTraceparent(trace: Pick<TraceContext, "traceId" | "spanId" | "sampled">): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.sampled ? "01" : "00"}`;
}

/** The child context for one outbound call: same trace, a fresh span id. */
export function childTrace(trace: TraceContext): TraceContext {
  return { ...trace, parentSpanId: trace.spanId, spanId: newSpanId() };
}

const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/;

/** A client's X-Request-Id is kept when it is 8-128 safe characters, else replaced by a UUID. */
export function acceptRequestId(header: string | null | undefined): string {
  const value = header?.trim();
  return value && REQUEST_ID.test(value) ? value : crypto.randomUUID();
}
