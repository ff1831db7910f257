import { env } from "cloudflare:workers";
import { vi } from "vitest";
import type { MetricName } from "../../src/metrics/catalog.ts";
import { validateServerEvent } from "../realtime-conformance.ts";
import { openSocket, type SocketOptions } from "./harness.ts";

// biome-ignore lint/suspicious/noExplicitAny: server events, checked by the conformance suite and assertions
export type Event = Record<string, any>;

/** A realtime socket (openSocket): every server event is checked against the OpenAI Realtime GA schemas as it arrives. */
export async function openRealtime(path: string, options: SocketOptions = {}) {
  const problems: string[] = [];
  const socket = await openSocket(path, {
    ...options,
    onMessage: (event) => {
      for (const problem of validateServerEvent(event)) problems.push(`${event.type}: ${problem}`);
      options.onMessage?.(event);
    },
  });
  return { ...socket, events: socket.messages as Event[], problems };
}

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

/**
 * Samples of one catalog metric written to Analytics Engine from now on (the session objects share the test's env),
 * each as its label values in catalog order and its value. A session writes a metric as it sends the event the metric
 * times, so every sample is here once the client has that event. Undo with vi.restoreAllMocks().
 */
export function metricSamples(name: MetricName): () => { labels: string[]; value: number | undefined }[] {
  const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
  return () =>
    writes.mock.calls.flatMap(([point]) => {
      const [metric, , ...labels] = (point?.blobs ?? []) as string[];
      return metric === name ? [{ labels, value: point?.doubles?.[0] }] : [];
    });
}
