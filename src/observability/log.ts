import { currentWorkContext } from "./context.ts";
import { redact } from "./redact.ts";

type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold: LogLevel = "info";

/** Set from config once per isolate (LOG_LEVEL). */
export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

/** One JSON object per line, redacted, stamped with the current request and trace. */
export function log(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
  if (order[level] < order[threshold]) return;
  const context = currentWorkContext();
  const line = redact({
    level,
    time: new Date().toISOString(),
    message,
    ...(context ? { request_id: context.requestId, trace_id: context.trace.traceId } : {}),
    ...(context?.userId ? { user_id: context.userId } : {}),
    ...fields,
  });
  const text = JSON.stringify(line);
  if (level === "error") console.error(text);
  else if (level === "warn") console.warn(text);
  else console.log(text);
}
