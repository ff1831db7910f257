// A Server-Sent Events request: its events as they arrive, each within the idle timeout of the one before.
import { open, type Reply, reply, type Send, TIMEOUT_MS, Unreachable } from "./http.ts";

export interface ServerEvent {
  event: string;
  data: string;
}

/** The event stream of a request, or the JSON reply when the server answered without one (an error). */
export async function openEvents(
  base: string,
  send: Send,
): Promise<{ reply: Reply; events?: undefined } | { events: AsyncGenerator<ServerEvent>; reply?: undefined }> {
  const idleMs = send.timeoutMs ?? TIMEOUT_MS;
  const abort = new AbortController();
  // A long answer is fine; a silent server is not: the timer restarts with every chunk.
  let timer = setTimeout(() => abort.abort(), idleMs);
  const idle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(), idleMs);
  };
  const silent = () => new Unreachable(`Could not reach ${base}: no answer within ${idleMs / 1000} s`);
  let res: Response;
  try {
    res = await open(base, send, abort.signal, "text/event-stream, application/problem+json");
  } catch (error) {
    clearTimeout(timer);
    throw abort.signal.aborted ? silent() : error;
  }
  if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream") || !res.body) {
    try {
      return { reply: reply(res.status, await res.text()) };
    } catch {
      throw silent();
    } finally {
      clearTimeout(timer);
    }
  }
  const body = res.body.pipeThrough(new TextDecoderStream());
  async function* events(): AsyncGenerator<ServerEvent> {
    let buffer = "";
    try {
      for await (const chunk of body) {
        idle();
        buffer += chunk.replaceAll("\r\n", "\n");
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseBlock(block);
          if (event) yield event;
        }
      }
    } catch (error) {
      throw abort.signal.aborted ? silent() : new Unreachable(`The stream from ${base} broke: ${String(error)}`);
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }
  return { events: events() };
}

/** One event block: its `event:` name (default "message") and its `data:` lines joined. */
function parseBlock(block: string): ServerEvent | undefined {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return data.length ? { event, data: data.join("\n") } : undefined;
}
