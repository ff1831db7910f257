// The OpenAI Realtime stand-in (test/standins/realtime-upstream.ts) driven with the `ws` client, as the
// voice relay's Durable Object will drive it: every event it sends must match the GA schemas.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type RealtimeConnectionLog, startRealtimeStandIn } from "../standins/realtime-upstream.ts";

// The GA schema check the Workers suites use, loaded by a computed specifier: it imports its JSON fixtures
// without `with { type: "json" }`, which tsconfig.node.json (NodeNext) rejects (TS1543); vitest loads it fine.
const CONFORMANCE = "../realtime-conformance.ts";
const { validateServerEvent } = (await import(/* @vite-ignore */ CONFORMANCE)) as {
  validateServerEvent(event: unknown): string[];
};

// Events are read loosely: validateServerEvent checks their shape against the GA schemas.
// biome-ignore lint/suspicious/noExplicitAny: test assertions read nested fields of schema-checked events.
type Event = { type: string } & Record<string, any>;

interface Client {
  ws: WebSocket;
  events: Event[];
  problems: string[];
  closed: Promise<{ code: number; reason: string }>;
  send(event: object): void;
  /** The earliest event of `type` not yet returned by next(). */
  next(type: string, timeoutMs?: number): Promise<Event>;
}

const MODEL = "gpt-realtime";
const KEY = "sk-test-realtime-0123456789";
const SOURCES = {
  passages: [
    {
      n: 1,
      title: "Sepsis bundle",
      page: 3,
      text: "Give broad-spectrum antibiotics within one hour of recognising sepsis, after blood cultures.",
    },
    { n: 2, title: "Fluids", page: 4, text: "Thirty millilitres per kilogram of crystalloid." },
  ],
};

let standIn: { url: string; stop(): Promise<void> };
const clients: Client[] = [];

beforeAll(async () => {
  standIn = await startRealtimeStandIn({ delayMs: 5 });
});

afterAll(async () => {
  await standIn.stop();
});

afterEach(() => {
  // Every event of every client of the test matched the GA schemas.
  const problems = clients.flatMap((c) => c.problems);
  for (const client of clients.splice(0)) client.ws.terminate();
  expect(problems).toEqual([]);
});

const wsUrl = (model = MODEL) => `${standIn.url.replace(/^http/, "ws")}/v1/realtime?model=${model}`;

function connect(headers: Record<string, string> = { authorization: `Bearer ${KEY}` }, url = wsUrl()): Client {
  const ws = new WebSocket(url, { headers });
  const events: Event[] = [];
  const problems: string[] = [];
  const consumed = new Set<number>();
  const waiters: (() => void)[] = [];
  ws.on("message", (data) => {
    const event = JSON.parse(String(data)) as Event;
    events.push(event);
    for (const problem of validateServerEvent(event)) problems.push(`${event.type}: ${problem}`);
    for (const wake of waiters.splice(0)) wake();
  });
  ws.on("error", () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const next = (type: string, timeoutMs = 5_000) =>
    new Promise<Event>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`no ${type} in ${timeoutMs} ms; got ${events.map((e) => e.type).join(", ")}`)),
        timeoutMs,
      );
      const look = () => {
        const index = events.findIndex((e, i) => e.type === type && !consumed.has(i));
        if (index < 0) return void waiters.push(look);
        consumed.add(index);
        clearTimeout(deadline);
        resolve(events[index]!);
      };
      look();
    });
  const client: Client = {
    ws,
    events,
    problems,
    closed,
    next,
    send: (event) => ws.send(JSON.stringify(event)),
  };
  clients.push(client);
  return client;
}

/** The status an upgrade was refused with. */
function refusedStatus(headers: Record<string, string>, url = wsUrl()): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on("open", () => reject(new Error("the upgrade was accepted")));
    ws.on("error", () => {});
    ws.on("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
  });
}

async function sessions(contains = ""): Promise<RealtimeConnectionLog[]> {
  const response = await fetch(`${standIn.url}/__sessions?contains=${encodeURIComponent(contains)}`);
  return (await response.json()) as RealtimeConnectionLog[];
}

const userText = (text: string) => ({
  type: "conversation.item.create",
  item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
});

const SEARCH_TOOL = {
  type: "function",
  name: "search_knowledge_base",
  description: "Search the knowledge base.",
  parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
};

/** After session.created, a session with the search tool (and the given settings). */
async function groundedSession(client: Client, settings: Record<string, unknown> = {}) {
  await client.next("session.created");
  client.send({ type: "session.update", session: { type: "realtime", tools: [SEARCH_TOOL], ...settings } });
  return client.next("session.updated");
}

/** The types of the events from index `from` on, consecutive repeats collapsed ("x.delta" once). */
const sequence = (events: Event[], from = 0) =>
  events
    .slice(from)
    .map((e) => e.type)
    .filter((type, i, types) => type !== types[i - 1]);

const pcmSilence = (ms: number) => Buffer.alloc(48 * ms).toString("base64");

describe("realtime upstream stand-in", () => {
  it("refuses a missing or invalid key with 401, and a missing model with 400", async () => {
    const missing = await refusedStatus({});
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.body).error.code).toBe("invalid_api_key");
    expect((await refusedStatus({ authorization: "Bearer sk-invalid-key" })).status).toBe(401);
    expect(
      (await refusedStatus({ authorization: `Bearer ${KEY}` }, `${standIn.url.replace(/^http/, "ws")}/v1/realtime`))
        .status,
    ).toBe(400);
    const refused = (await sessions()).filter((s) => s.refused !== null);
    expect(refused.map((s) => [s.refused, s.authorization])).toEqual(
      expect.arrayContaining([
        [401, null],
        [401, "Bearer sk-invalid-key"],
      ]),
    );
  });

  it("opens a session and merges session.update", async () => {
    const client = connect();
    const created = await client.next("session.created");
    expect(created.session).toMatchObject({ model: MODEL, output_modalities: ["audio"], tools: [] });
    client.send({
      type: "session.update",
      session: {
        type: "realtime",
        instructions: "Be brief.",
        tools: [SEARCH_TOOL],
        audio: { output: { voice: "marin" }, input: { turn_detection: { type: "server_vad", threshold: 0.7 } } },
      },
    });
    const updated = await client.next("session.updated");
    expect(updated.session).toMatchObject({
      id: created.session.id,
      instructions: "Be brief.",
      tools: [SEARCH_TOOL],
      audio: { output: { voice: "marin" }, input: { turn_detection: { threshold: 0.7, silence_duration_ms: 200 } } },
    });
  });

  it("answers a grounded question with a search call, then quotes the tool's first title", async () => {
    const client = connect();
    await groundedSession(client);
    const question = "When are antibiotics due in sepsis?";
    client.send(userText(question));
    const added = await client.next("conversation.item.added");
    expect(added.item).toMatchObject({ type: "message", role: "user", status: "completed" });
    await client.next("conversation.item.done");

    const firstTurn = client.events.length;
    client.send({ type: "response.create" });
    const called = await client.next("response.done");
    expect(called.response).toMatchObject({ status: "completed", output: [{ type: "function_call" }] });
    expect(called.response.usage.total_tokens).toBe(
      called.response.usage.input_tokens + called.response.usage.output_tokens,
    );
    expect(sequence(client.events, firstTurn)).toEqual([
      "response.created",
      "response.output_item.added",
      "conversation.item.added",
      "response.function_call_arguments.delta",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "conversation.item.done",
      "response.done",
    ]);
    const deltas = client.events.filter((e) => e.type === "response.function_call_arguments.delta");
    expect(deltas.length).toBeGreaterThanOrEqual(2);
    const done = await client.next("response.function_call_arguments.done");
    expect(deltas.map((d) => d.delta).join("")).toBe(done.arguments);
    expect(JSON.parse(done.arguments)).toEqual({ query: question });
    expect(done).toMatchObject({ name: "search_knowledge_base", call_id: called.response.output[0].call_id });

    client.send({
      type: "conversation.item.create",
      item: { type: "function_call_output", call_id: done.call_id, output: JSON.stringify(SOURCES) },
    });
    const secondTurn = client.events.length;
    client.send({ type: "response.create" });
    const answered = await client.next("response.done");
    const expected = `According to Sepsis bundle [1]: ${SOURCES.passages[0]!.text.slice(0, 60)}`;
    expect(answered.response).toMatchObject({
      status: "completed",
      output: [{ type: "message", role: "assistant", content: [{ type: "output_audio", transcript: expected }] }],
      usage: { output_token_details: { audio_tokens: 6 } },
    });
    const streamed = client.events.slice(secondTurn);
    const transcript = streamed.filter((e) => e.type === "response.output_audio_transcript.delta");
    expect(transcript.length).toBeGreaterThan(1);
    expect(transcript.map((e) => e.delta).join("")).toBe(expected);
    const audio = streamed.filter((e) => e.type === "response.output_audio.delta");
    expect(audio.map((e) => Buffer.from(e.delta, "base64").length)).toEqual([4800, 4800, 4800]);
    expect(streamed.some((e) => e.type === "response.output_text.delta")).toBe(false);
    expect(sequence(streamed).slice(-6)).toEqual([
      "response.output_audio.done",
      "response.output_audio_transcript.done",
      "response.content_part.done",
      "response.output_item.done",
      "conversation.item.done",
      "response.done",
    ]);

    const [log] = await sessions(question);
    expect(log).toMatchObject({ model: MODEL, authorization: `Bearer ${KEY}`, closed: false });
    expect(log!.events.map((e) => e.type)).toEqual([
      "session.update",
      "conversation.item.create",
      "response.create",
      "conversation.item.create",
      "response.create",
    ]);
    expect(log!.conversation.map((i) => (i as { type: string }).type)).toEqual([
      "message",
      "function_call",
      "function_call_output",
      "message",
    ]);
  });

  it("streams text for a text-only session; !notool and !reply script the answer", async () => {
    const client = connect();
    await groundedSession(client, { output_modalities: ["text"] });
    client.send(userText("!notool hello there"));
    client.send({ type: "response.create" });
    const plain = await client.next("response.done");
    expect(plain.response.output[0].content).toEqual([
      { type: "output_text", text: "Stand-in answer to: !notool hello there" },
    ]);
    expect(client.events.some((e) => e.type.startsWith("response.output_audio"))).toBe(false);
    const text = client.events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta);
    expect(text.join("")).toBe("Stand-in answer to: !notool hello there");

    client.send(userText("!notool !reply Exactly this."));
    client.send({ type: "response.create", response: { output_modalities: ["audio"] } });
    const scripted = await client.next("response.done");
    expect(scripted.response.output[0].content).toEqual([{ type: "output_audio", transcript: "Exactly this." }]);
  });

  it("commits audio into a transcribed user item", async () => {
    const client = connect();
    await client.next("session.created");
    client.send({ type: "input_audio_buffer.append", audio: pcmSilence(300) });
    client.send({ type: "input_audio_buffer.append", audio: pcmSilence(200) });
    client.send({ type: "input_audio_buffer.commit" });
    const committed = await client.next("input_audio_buffer.committed");
    const item = await client.next("conversation.item.done");
    expect(item.item).toMatchObject({ id: committed.item_id, role: "user", content: [{ type: "input_audio" }] });
    const completed = await client.next("conversation.item.input_audio_transcription.completed");
    expect(completed).toMatchObject({ item_id: committed.item_id, transcript: "stand-in transcript of 500 ms" });
    const deltas = client.events.filter((e) => e.type === "conversation.item.input_audio_transcription.delta");
    expect(deltas.map((e) => e.delta).join("")).toBe(completed.transcript);

    // The test trick: audio that is the ASCII text "!transcript <text>" is heard as <text>.
    client.send({
      type: "input_audio_buffer.append",
      audio: Buffer.from("!transcript What is the sepsis bundle?\0\0").toString("base64"),
    });
    client.send({ type: "input_audio_buffer.commit" });
    const scripted = await client.next("conversation.item.input_audio_transcription.completed");
    expect(scripted.transcript).toBe("What is the sepsis bundle?");

    client.send({ type: "input_audio_buffer.commit", event_id: "evt_empty" });
    const empty = await client.next("error");
    expect(empty.error).toMatchObject({ code: "input_audio_buffer_commit_empty", event_id: "evt_empty" });

    // The transcript is the user text a response answers (here with the search tool).
    client.send({ type: "session.update", session: { type: "realtime", tools: [SEARCH_TOOL] } });
    client.send({ type: "response.create" });
    const args = await client.next("response.function_call_arguments.done");
    expect(JSON.parse(args.arguments)).toEqual({ query: "What is the sepsis bundle?" });
  });

  it("cancels a slow answer, signals a barge-in and truncates the unheard audio", async () => {
    const client = connect();
    await client.next("session.created");
    client.send(userText("!notool !slow=150 tell me about the sepsis bundle and its many steps"));
    client.send({ type: "response.create" });
    await client.next("response.output_audio.delta");
    // The user talks over the answer.
    client.send({ type: "input_audio_buffer.append", audio: pcmSilence(200) });
    const started = await client.next("input_audio_buffer.speech_started");
    client.send({ type: "response.cancel" });
    const done = await client.next("response.done");
    expect(done.response).toMatchObject({
      status: "cancelled",
      status_details: { type: "cancelled", reason: "client_cancelled" },
      output: [{ status: "incomplete" }],
    });
    const audio = client.events.filter((e) => e.type === "response.output_audio.delta");
    expect(audio.length).toBeLessThan(3);
    expect(client.events.some((e) => e.type === "response.output_audio_transcript.done")).toBe(false);

    client.send({ type: "input_audio_buffer.append", audio: pcmSilence(100) });
    client.send({ type: "input_audio_buffer.commit" });
    const stopped = await client.next("input_audio_buffer.speech_stopped");
    expect(stopped).toMatchObject({ item_id: started.item_id, audio_end_ms: 300 });
    expect((await client.next("input_audio_buffer.committed")).item_id).toBe(started.item_id);

    const assistant = done.response.output[0].id;
    client.send({ type: "conversation.item.truncate", item_id: assistant, content_index: 0, audio_end_ms: 50 });
    expect(await client.next("conversation.item.truncated")).toMatchObject({ item_id: assistant, audio_end_ms: 50 });
    client.send({ type: "conversation.item.truncate", item_id: assistant, content_index: 0, audio_end_ms: 5_000 });
    expect((await client.next("error")).error.code).toBe("invalid_value");

    client.send({ type: "response.cancel" });
    expect((await client.next("error")).error.code).toBe("response_cancel_not_active");
    client.send({ type: "conversation.item.delete", item_id: assistant });
    expect((await client.next("conversation.item.deleted")).item_id).toBe(assistant);
  });

  it("refuses a second response while one is active, and invalid events", async () => {
    const client = connect();
    await client.next("session.created");
    client.send(userText("!notool !slow=50 one at a time"));
    client.send({ type: "response.create" });
    client.send({ type: "response.create" });
    expect((await client.next("error")).error.code).toBe("conversation_already_has_active_response");
    await client.next("response.done");
    client.send({ type: "no.such.event" });
    expect((await client.next("error")).error.code).toBe("unknown_event");
    client.send({ type: "conversation.item.delete", item_id: "item_missing" });
    expect((await client.next("error")).error.code).toBe("item_not_found");
  });

  it("drops the socket after response.created for !drop, once per text", async () => {
    const text = `!drop cut me off ${Date.now()}`;
    const client = connect();
    await groundedSession(client);
    client.send(userText(text));
    client.send({ type: "response.create" });
    await client.next("response.created");
    expect((await client.closed).code).toBe(1006);
    expect(client.events.at(-1)!.type).toBe("response.created");
    await expect.poll(async () => (await sessions(text))[0]?.closedBy).toBe("server");

    // A client that reconnects and replays the conversation gets its answer.
    const again = connect();
    await groundedSession(again);
    again.send(userText(text));
    again.send({ type: "response.create" });
    expect((await again.next("response.done")).response.status).toBe("completed");
  });

  it("sends an error event for !error", async () => {
    const client = connect();
    await client.next("session.created");
    client.send(userText(`!error please ${Date.now()}`));
    client.send({ type: "response.create", event_id: "evt_scripted" });
    const error = await client.next("error");
    expect(error.error).toMatchObject({ type: "server_error", code: "server_error", event_id: "evt_scripted" });
    expect(client.events.some((e) => e.type === "response.created")).toBe(false);
  });

  it("logs client closes and forgets everything on reset", async () => {
    const client = connect();
    await client.next("session.created");
    client.send({ type: "input_audio_buffer.append", audio: pcmSilence(40), event_id: "evt_logged" });
    client.send({ type: "input_audio_buffer.clear" });
    await client.next("input_audio_buffer.cleared");
    client.ws.close(1000, "bye");
    await client.closed;
    await expect
      .poll(async () => (await sessions("evt_logged"))[0])
      .toMatchObject({
        closed: true,
        closedBy: "client",
        closeCode: 1000,
        closeReason: "bye",
        events: [
          { type: "input_audio_buffer.append", body: { audio: "[1920 bytes]", event_id: "evt_logged" } },
          { type: "input_audio_buffer.clear" },
        ],
        sent: ["session.created", "input_audio_buffer.cleared"],
      });
    const reset = await fetch(`${standIn.url}/__reset`, { method: "POST" });
    expect(reset.status).toBe(200);
    expect(await sessions()).toEqual([]);
  });
});
