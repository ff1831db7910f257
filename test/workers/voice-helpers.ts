import { vi } from "vitest";
import { validateServerEvent } from "../realtime-conformance.ts";
import { serve } from "./harness.ts";
import { app, type TestUser } from "./identity-helpers.ts";

// biome-ignore lint/suspicious/noExplicitAny: server events, checked by the conformance suite and assertions
export type Event = Record<string, any>;

/** A realtime socket: every server event is checked against the OpenAI Realtime GA schemas as it arrives. */
export async function open(path: string, headers: Record<string, string>, overrides: Record<string, unknown> = {}) {
  const res = await serve(app, path, { headers: { upgrade: "websocket", ...headers } }, overrides);
  const socket = res.webSocket;
  const events: Event[] = [];
  const problems: string[] = [];
  let closed: { code: number; reason: string } | undefined;
  if (socket) {
    socket.accept();
    socket.addEventListener("message", (event) => {
      const parsed = JSON.parse(event.data as string);
      events.push(parsed);
      for (const problem of validateServerEvent(parsed)) problems.push(`${parsed.type}: ${problem}`);
    });
    socket.addEventListener("close", (event) => {
      closed = { code: event.code, reason: event.reason };
    });
  }
  const until = async (match: (e: Event) => boolean, timeoutMs = 10_000): Promise<Event> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching event; got ${events.map((e) => e.type).join(", ")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const send = (event: object | string) => socket?.send(typeof event === "string" ? event : JSON.stringify(event));
  return { res, socket, events, problems, until, send, closed: () => closed };
}

export const bearer = (user: TestUser) => ({ authorization: `Bearer ${user.access}` });
export const textItem = (text: string) => ({
  type: "conversation.item.create",
  item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
});

/** Every warn and error line logged from now on (the Durable Objects share the test's isolate), parsed. */
export function capturedLogs(): { lines: Record<string, unknown>[]; raw: string[] } {
  const raw: string[] = [];
  for (const level of ["warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((line: unknown) => {
      raw.push(String(line));
    });
  }
  return {
    raw,
    get lines() {
      return raw.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
    },
  };
}
