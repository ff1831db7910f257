// The change stream as a caller receives it: only what that caller may see of each change, and for no longer
// than the caller is still admitted. The FlagHub filters per stream; the route re-checks the caller.
import type { Context } from "hono";
import type { FlagChangeEvent } from "../../workers/flag-hub.ts";
import type { AppEnv } from "../app-env.ts";
import type { Principal } from "../auth/principal.ts";
import { ApiError } from "../errors.ts";
import { admitFlagCaller } from "./request.ts";

/** How often an open stream re-checks its caller: a session ended in any isolate ends its streams this late. */
export const STREAM_RECHECK_MS = 30_000;

/** Runs `tick` every `ms` until the returned stop is called; a seam, so tests tick without waiting. */
export const streamClock = {
  every(ms: number, tick: () => Promise<void>): () => void {
    const timer = setInterval(() => void tick(), ms);
    return () => clearInterval(timer);
  },
};

/**
 * Who reads a stream. Admins and viewers read every flag, segment and override, so they get every change; a
 * plain user gets every version with the flag keys changed and its own overrides, never another user's id.
 */
export type StreamViewer = { sees: "all" } | { sees: "own"; userId: string };

export const viewerOf = (principal: Principal): StreamViewer =>
  principal.role === "user" ? { sees: "own", userId: principal.userId } : { sees: "all" };

/** What `viewer` may see of a change event (the override owner used to decide never leaves the hub). */
export function visibleChanges(event: FlagChangeEvent, viewer: StreamViewer): FlagChangeEvent {
  const visible = event.changes.filter(
    (change) =>
      viewer.sees === "all" ||
      change.subject === "flag" ||
      (change.subject === "flag_override" && change.userId === viewer.userId),
  );
  return { ...event, changes: visible.map(({ subject, key, action }) => ({ subject, key, action })) };
}

// The hub learns the viewer from the request the route builds, never from the client's own headers.
const HUB_STREAM_URL = "https://flag-hub/stream";

/** The request for the hub's stream: the viewer and where to resume, nothing else of the client's request. */
export function hubStreamRequest(viewer: StreamViewer, lastEventId: string | undefined): Request {
  const url = new URL(HUB_STREAM_URL);
  if (viewer.sees === "all") url.searchParams.set("viewer", "all");
  else url.searchParams.set("user", viewer.userId);
  return new Request(url, { headers: lastEventId === undefined ? {} : { "last-event-id": lastEventId } });
}

/** The viewer a hub request names; anything but an explicit "all" sees only its own (fails closed). */
export function viewerFromHubRequest(request: Request): StreamViewer {
  const params = new URL(request.url).searchParams;
  return params.get("viewer") === "all" ? { sees: "all" } : { sees: "own", userId: params.get("user") ?? "" };
}

const encoder = new TextEncoder();

/** One server-sent event. */
export const sseFrame = (event: string, data: unknown, id?: number) =>
  encoder.encode(`${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

/** Why a stream ended: the refusal its caller would now get. */
interface StreamEnd {
  code: string;
  reason: string;
}

/** Why the caller that opened a stream may no longer read it (signed out, or another user or role now), if so. */
export async function refusalOf(c: Context<AppEnv>, opened: Principal): Promise<StreamEnd | undefined> {
  try {
    const now = await admitFlagCaller(c);
    if (now.userId === opened.userId && now.role === opened.role) return undefined;
    return { code: "FORBIDDEN", reason: "The caller's role has changed: reconnect to read what it may see now." };
  } catch (error) {
    return error instanceof ApiError
      ? { code: error.code, reason: error.message }
      : { code: "INTERNAL", reason: "The caller could not be checked again; reconnect." };
  }
}

/**
 * The hub's stream, passed through until `refusal` (asked every STREAM_RECHECK_MS) names a reason to stop:
 * then an `end` event carrying it, and the stream closes.
 */
export function endWhenRefused(
  upstream: ReadableStream<Uint8Array>,
  refusal: () => Promise<StreamEnd | undefined>,
): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  let stop = () => {};
  let ended = false;
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>, last?: Uint8Array) => {
    if (ended) return;
    ended = true;
    stop();
    if (last) controller.enqueue(last);
    controller.close();
    reader.cancel().catch(() => undefined);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      stop = streamClock.every(STREAM_RECHECK_MS, async () => {
        const end = await refusal();
        if (end) finish(controller, sseFrame("end", end));
      });
    },
    async pull(controller) {
      const next = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (ended) return;
      if (next.done) finish(controller);
      else controller.enqueue(next.value);
    },
    cancel() {
      ended = true;
      stop();
      return reader.cancel().catch(() => undefined);
    },
  });
}
