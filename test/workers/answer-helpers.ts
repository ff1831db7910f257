import { serve, stack } from "./harness.ts";
import { app } from "./identity-helpers.ts";

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

/** A JSON POST (or any method) with optional binding overrides; returns the raw Response. */
export function post(
  path: string,
  token: string,
  json: unknown,
  options: { overrides?: Record<string, unknown>; method?: string; accept?: string } = {},
) {
  return serve(
    app,
    path,
    {
      method: options.method ?? "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...(options.accept ? { accept: options.accept } : {}),
      },
      body: JSON.stringify(json),
    },
    options.overrides,
  );
}

/** Requests the OpenAI stand-in received whose body contains `text`. */
export async function upstreamRequests(text: string): Promise<{ body: Record<string, unknown>; aborted: boolean }[]> {
  const res = await fetch(`${stack().openaiUrl}/__requests?contains=${encodeURIComponent(text)}`);
  return res.json();
}
