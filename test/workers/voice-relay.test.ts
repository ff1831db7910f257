import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { settledSample } from "./exposition.ts";
import { call, stack } from "./harness.ts";
import { signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";
import { type Event, metricSamples, openRealtime, textItem } from "./voice-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `morvelan${run.replace(/\d/g, "")}`;

let admin: TestUser;
let alice: TestUser;

/** Bindings that put the session in upstream mode against the fake OpenAI Realtime server. */
const upstream = (extra: Record<string, string> = {}) => ({
  OPENAI_API_KEY: "sk-relay-test",
  OPENAI_BASE_URL: `${stack().realtimeUrl}/v1`,
  ...extra,
});

/** What the fake upstream saw, per connection, for connections whose client events contain `text`. */
async function upstreamSessions(text: string): Promise<Event[]> {
  const res = await fetch(`${stack().realtimeUrl}/__sessions?contains=${encodeURIComponent(text)}`);
  return res.json();
}

const until = async <T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
};

beforeAll(async () => {
  admin = await signedInUser("admin");
  alice = await signedInUser();
  await addIndexedDocument(admin.access, {
    title: "Hypothermia",
    sourceType: `relay-${run}`,
    text: `Hypothermia ${WORD} below 32 degrees needs active external rewarming with forced warm air. Handle the patient gently to avoid arrhythmias.`,
  });
});

describe("realtime voice, upstream mode: relay to OpenAI Realtime", () => {
  it("injects the grounding, runs search_knowledge_base itself, and answers with citations", async () => {
    const tag = `tool-${crypto.randomUUID()}`;
    const s = await openRealtime("/v1/realtime", { token: alice.access, overrides: upstream() });
    expect(s.res.status).toBe(101);
    const created = await s.until((e) => e.type === "session.created");
    expect(created.session.instructions).toBe("");
    expect(created.session.tools).toEqual([]);
    s.send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"], instructions: tag } });
    await s.until((e) => e.type === "session.updated");
    s.send(textItem(`${tag} rewarming for hypothermia ${WORD}?`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.function_call_arguments.done");
    const done = await s.until((e) => e.type === "response.done" && e.response.output?.[0]?.type === "message");
    const text = s.events
      .filter((e) => e.type === "response.output_text.delta")
      .map((e) => e.delta)
      .join("");
    expect(text).toContain("According to Hypothermia");
    expect(JSON.parse(done.response.metadata.citations)[0]).toMatchObject({ i: 1, t: "Hypothermia" });
    expect(s.problems).toEqual([]);

    const seen = (await upstreamSessions(tag))[0] as Event;
    expect(seen.authorization).toBe("Bearer sk-relay-test");
    const updates = seen.events.filter((e: Event) => e.type === "session.update").map((e: Event) => e.body.session);
    expect(updates.at(-1).instructions).toMatch(/^You are VoiceAssist/);
    expect(updates.at(-1).instructions).toContain(tag);
    expect(updates.at(-1).tools.map((t: Event) => t.name)).toContain("search_knowledge_base");
    const output = seen.events.find((e: Event) => e.body?.item?.type === "function_call_output");
    expect(JSON.parse(output.body.item.output).passages[0].title).toBe("Hypothermia");
    // The client never sees the server's instructions.
    expect(JSON.stringify(s.events)).not.toContain("You are VoiceAssist");
  });

  it("stores transcripts and answers in the session's conversation, with citations and usage", async () => {
    const conversation = await call("POST", "/api/conversations", { token: alice.access, json: {} });
    const created = await call("POST", "/api/voice/sessions", {
      token: alice.access,
      json: { conversation_id: conversation.body.id },
    });
    const s = await openRealtime(created.body.url, { overrides: upstream() });
    await s.until((e) => e.type === "session.created");
    s.send(textItem(`hypothermia ${WORD} rewarming`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done" && e.response.output?.[0]?.type === "message");
    const messages = await until(async () => {
      const res = await call("GET", `/api/conversations/${conversation.body.id}/messages`, { token: alice.access });
      // Rows and total are read side by side: wait for both to show the turn.
      return res.body.items.length === 2 ? res.body.items : undefined;
    });
    expect(messages[0]).toMatchObject({ role: "user", content: `hypothermia ${WORD} rewarming` });
    expect(messages[1].citations[0].title).toBe("Hypothermia");
    const session = await call("GET", `/api/voice/sessions/${created.body.id}`, { token: alice.access });
    expect(session.body.usage.turns).toBe(1);
    expect(session.body.usage.output_tokens).toBeGreaterThan(0);
    expect(session.body.usage.audio_out_seconds).toBeGreaterThan(0);
    expect(session.body.usage.cost_usd).toBeGreaterThan(0);
  });

  it("on barge-in cancels the response and relays the client's truncate with its played milliseconds", async () => {
    const tag = `barge-${crypto.randomUUID()}`;
    const bargeIns = "voiceassist_voice_barge_ins_total";
    const before = (await settledSample(bargeIns, 0, 0)) ?? 0;
    const created = await call("POST", "/api/voice/sessions", { token: alice.access, json: {} });
    const s = await openRealtime(created.body.url, { overrides: upstream() });
    await s.until((e) => e.type === "session.created");
    s.send(textItem(`${tag} hypothermia ${WORD} !notool !slow=150`));
    s.send({ type: "response.create" });
    const added = await s.until((e) => e.type === "response.output_item.added");
    await s.until((e) => e.type === "response.output_audio.delta");
    const speech = btoa(String.fromCharCode(...new Uint8Array(4800)));
    s.send({ type: "input_audio_buffer.append", audio: speech });
    await s.until((e) => e.type === "input_audio_buffer.speech_started");
    s.send({ type: "conversation.item.truncate", item_id: added.item.id, content_index: 0, audio_end_ms: 150 });
    const done = await s.until((e) => e.type === "response.done");
    expect(done.response.status).toBe("cancelled");
    const seen = (await upstreamSessions(tag))[0] as Event;
    const types = seen.events.map((e: Event) => e.type);
    expect(types).toContain("response.cancel");
    expect(seen.events.find((e: Event) => e.type === "conversation.item.truncate").body.audio_end_ms).toBe(150);
    const session = await until(async () => {
      const res = await call("GET", `/api/voice/sessions/${created.body.id}`, { token: alice.access });
      return res.body.usage.barge_ins === 1 ? res.body : undefined;
    });
    expect(session.usage.barge_ins).toBe(1);
    expect(await settledSample(bargeIns, before + 1)).toBe(before + 1);
  });

  it("survives an upstream drop: reconnects, restores the conversation, and the client sees no break", async () => {
    const tag = `drop-${crypto.randomUUID()}`;
    const s = await openRealtime("/v1/realtime", { token: alice.access, overrides: upstream() });
    await s.until((e) => e.type === "session.created");
    s.send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"] } });
    s.send(textItem(`${tag} first hypothermia ${WORD} !notool`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done");
    s.send(textItem(`${tag} second !notool !drop`));
    s.send({ type: "response.create" });
    const completed = () => s.events.filter((e) => e.type === "response.done" && e.response.status === "completed");
    await s.until(() => completed().length === 2, 15_000);
    expect(completed()[1]?.response.output[0].content[0].text).toContain("second");
    expect(s.closed()).toBeUndefined();
    expect(s.events.filter((e) => e.type === "session.created")).toHaveLength(1);
    const connections = await upstreamSessions(tag);
    expect(connections).toHaveLength(2);
    const restored = (connections[1] as Event).events.filter((e: Event) => e.type === "conversation.item.create");
    expect(JSON.stringify(restored)).toContain(`${tag} first`);
    expect(s.problems).toEqual([]);
  });

  it("moves to a fresh upstream before the session cap, between turns", async () => {
    const tag = `refresh-${crypto.randomUUID()}`;
    const s = await openRealtime("/v1/realtime", {
      token: alice.access,
      overrides: upstream({ VOICE_UPSTREAM_REFRESH_SECONDS: "1" }),
    });
    await s.until((e) => e.type === "session.created");
    s.send(textItem(`${tag} hypothermia ${WORD} !notool`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done");
    const connections = await until(async () => {
      const found = await upstreamSessions(tag);
      // The old connection is closed once the new one has taken over.
      return found.length >= 2 && found[0]?.closed ? found : undefined;
    });
    expect((connections[0] as Event).closedBy).toBe("client");
    s.send(textItem(`${tag} again !notool`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done" && s.events.filter((x) => x.type === "response.done").length === 2);
    expect(s.closed()).toBeUndefined();
  });

  it("ends the session with a clear error when the upstream refuses the key", async () => {
    const s = await openRealtime("/v1/realtime", {
      token: alice.access,
      overrides: upstream({ OPENAI_API_KEY: "sk-invalid-key" }),
    });
    const error = await s.until((e) => e.type === "error");
    expect(error.error.message).toMatch(/OPENAI_API_KEY/);
    await until(async () => s.closed());
    expect(s.closed()?.code).toBe(1011);
  });
});

describe("voice SLO metrics, upstream mode", () => {
  afterEach(() => vi.restoreAllMocks());

  /** 100 ms of pcm16 whose bytes start with the stand-in's "!transcript <text>" script. */
  const spoken = (text: string) => {
    const bytes = new Uint8Array(4800);
    bytes.set(new TextEncoder().encode(`!transcript ${text}`));
    return { type: "input_audio_buffer.append", audio: btoa(String.fromCharCode(...bytes)) };
  };

  it("times the connect to the upstream's session.created once, and a connect the upstream refuses not at all", async () => {
    const connects = metricSamples("voice_connect_seconds");
    const s = await openRealtime("/v1/realtime", { token: alice.access, overrides: upstream() });
    await s.until((e) => e.type === "session.created");
    const ticket = await call("POST", "/api/voice/sessions", { token: alice.access, json: {} });
    const t = await openRealtime(ticket.body.url, { overrides: upstream() });
    await t.until((e) => e.type === "session.created");
    s.send(textItem(`hypothermia ${WORD} !notool !drop`));
    s.send({ type: "response.create" });
    // The relay's own reconnect is no connect of the client's: the restored upstream's session.created is not timed.
    await s.until((e) => e.type === "response.done" && e.response.status === "completed", 15_000);
    expect((await upstreamSessions(`hypothermia ${WORD} !notool !drop`)).length).toBeGreaterThanOrEqual(2);
    const refused = await openRealtime("/v1/realtime", {
      token: alice.access,
      overrides: upstream({ OPENAI_API_KEY: "sk-invalid-key" }),
    });
    await refused.until((e) => e.type === "error" && e.error.code === "upstream_unavailable");
    expect(await refused.closing()).toMatchObject({ code: 1011 });
    expect(connects().map((c) => c.labels)).toEqual([["upstream"], ["upstream"]]);
    for (const { value } of connects()) expect(value).toBeGreaterThanOrEqual(0);
  });

  it("times each spoken turn from the end of speech to its first transcript, once per turn", async () => {
    const tag = `heard-${crypto.randomUUID().slice(0, 8)}`;
    const transcripts = metricSamples("voice_first_transcript_seconds");
    const s = await openRealtime("/v1/realtime", { token: alice.access, overrides: upstream() });
    await s.until((e) => e.type === "session.created");
    const completed = () => s.events.filter((e) => e.type === "conversation.item.input_audio_transcription.completed");
    // A manual commit: committed ends the speech; several deltas, then completed.
    s.send(spoken(`${tag} rewarming for hypothermia`));
    s.send({ type: "input_audio_buffer.commit" });
    await s.until(() => completed().length === 1);
    expect(s.events.filter((e) => e.type === "conversation.item.input_audio_transcription.delta").length).toBe(4);
    expect(transcripts()).toEqual([{ labels: ["upstream"], value: expect.any(Number) }]);
    // Speech over an answer: speech_stopped, then committed, for the same item: still one turn.
    s.send(textItem(`${tag} hypothermia ${WORD} !notool !slow=100`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.output_audio.delta");
    s.send(spoken(`${tag} stop`));
    await s.until((e) => e.type === "input_audio_buffer.speech_started");
    s.send({ type: "input_audio_buffer.commit" });
    await s.until(() => completed().length === 2);
    expect(s.events.some((e) => e.type === "input_audio_buffer.speech_stopped")).toBe(true);
    expect(transcripts().map((t) => t.labels)).toEqual([["upstream"], ["upstream"]]);
    for (const { value } of transcripts()) expect(value).toBeGreaterThanOrEqual(0);
  });
});
