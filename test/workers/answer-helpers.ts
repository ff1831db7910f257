import { stack } from "./harness.ts";

export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** The events of a text/event-stream body. */
export function parseSse(text: string): SseEvent[] {
  return text
    .split("\n\n")
    .filter((block) => block.trim())
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
      const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join("\n");
      return { event, data: JSON.parse(data) };
    });
}

/** Bindings that make the app answer with OpenAI, i.e. the local OpenAI-compatible stand-in. */
export const withOpenAi = (extra: Record<string, string> = {}) => ({
  OPENAI_API_KEY: "sk-test-answers",
  OPENAI_BASE_URL: `${stack().openaiUrl}/v1`,
  ...extra,
});

/** Requests the OpenAI stand-in received whose body contains `text`. */
export async function upstreamRequests(text: string): Promise<{ body: Record<string, unknown>; aborted: boolean }[]> {
  const res = await fetch(`${stack().openaiUrl}/__requests?contains=${encodeURIComponent(text)}`);
  return res.json();
}
