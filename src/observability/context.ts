import { AsyncLocalStorage } from "node:async_hooks";
import type { TraceContext } from "./trace.ts";

/** What every log line, outbound call and queue message needs to know about the current work. */
export interface WorkContext {
  requestId: string;
  trace: TraceContext;
  userId?: string;
  /** The client's address (cf-connecting-ip) and user agent, for audit rows and rate limits. */
  ip?: string;
  userAgent?: string;
}

const storage = new AsyncLocalStorage<WorkContext>();

export const runInWorkContext = <T>(context: WorkContext, fn: () => T): T => storage.run(context, fn);

/** The context of the request, queue batch or cron run being served, if any. */
export const currentWorkContext = (): WorkContext | undefined => storage.getStore();
