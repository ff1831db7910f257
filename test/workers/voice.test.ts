import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { setLogLevel } from "../../src/observability/log.ts";
import { SOCKET_RECHECK_MS, socketRecheck } from "../../src/sockets/credential.ts";
import { recordVoiceGauges } from "../../src/voice/jobs.ts";
import { VOICE_UPGRADE_AT_HEADER } from "../../workers/voice-session.ts";
import { call, callRaw, OPERATOR_TOKEN, type SocketOptions } from "./harness.ts";
import { db, freshIp, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";
import { capturedLogs, type Event, metricSamples, openRealtime, textItem } from "./voice-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `thrennic${run.replace(/\d/g, "")}`;
const fixtures = inject("stack").voiceFixtures;

let admin: TestUser;
let alice: TestUser;

beforeAll(async () => {
  admin = await signedInUser("admin");
  alice = await signedInUser();
  await addIndexedDocument(admin.access, {
    title: "Status epilepticus",
    sourceType: `voice-${run}`,
    text: `Status epilepticus ${WORD} is treated first with a benzodiazepine such as lorazepam 4 mg intravenously. Give a second dose after 5 minutes if seizures continue.`,
  });
});

describe("realtime voice: connecting", () => {
  it("accepts an OpenAI-style client at /v1/realtime with a bearer token and sends session.created", async () => {
    const s = await openRealtime("/v1/realtime?model=gpt-realtime", { token: alice.access });
    expect(s.res.status).toBe(101);
    const created = await s.until((e) => e.type === "session.created");
    expect(created.session).toMatchObject({ type: "realtime", object: "realtime.session" });
    expect(s.problems).toEqual([]);
  });

  it("accepts the browser subprotocol openai-insecure-api-key.<token> and selects 'realtime'", async () => {
    const s = await openRealtime("/api/voice/realtime", {
      protocols: ["realtime", `openai-insecure-api-key.${alice.access}`],
    });
    expect(s.res.status).toBe(101);
    expect(s.res.headers.get("sec-websocket-protocol")).toBe("realtime");
  });

  it("accepts an API key as the bearer token, as OpenAI clients send their key", async () => {
    const created = await call("POST", "/api/users/me/api-keys", {
      token: alice.access,
      json: { name: "voice client" },
    });
    expect(created.status).toBe(201);
    const s = await openRealtime("/v1/realtime", { token: created.body.key });
    expect(s.res.status).toBe(101);
    await s.until((e) => e.type === "session.created");
  });

  it("refuses a bad or missing credential at the handshake", async () => {
    expect((await openRealtime("/v1/realtime", { token: "nope" })).res.status).toBe(401);
    expect((await openRealtime("/v1/realtime")).res.status).toBe(401);
    expect((await call("GET", "/v1/realtime", { token: alice.access })).status).toBe(400);
  });

  it("connects once with a ticket from POST /api/voice/sessions, and shows the session's usage", async () => {
    const created = await call("POST", "/api/voice/sessions", { token: alice.access, json: {} });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ mode: "local", status: "created" });
    const s = await openRealtime(created.body.url);
    expect(s.res.status).toBe(101);
    await s.until((e) => e.type === "session.created");
    expect((await openRealtime(created.body.url)).res.status).toBe(401);
    s.send(textItem(`lorazepam for status epilepticus ${WORD}?`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done");
    const usage = await call("GET", `/api/voice/sessions/${created.body.id}`, { token: alice.access });
    expect(usage.body).toMatchObject({ status: "active", usage: { turns: 1 } });
    expect(usage.body.usage.output_tokens).toBeGreaterThan(0);
    const other = await signedInUser();
    expect((await call("GET", `/api/voice/sessions/${created.body.id}`, { token: other.access })).status).toBe(404);
  });
});

describe("realtime voice: local mode turns", () => {
  it("answers a text turn, grounded, with output_text deltas, citations in metadata and usage", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send(textItem(`What is the first treatment for status epilepticus ${WORD}?`));
    await s.until((e) => e.type === "conversation.item.done");
    s.send({ type: "response.create" });
    const done = await s.until((e) => e.type === "response.done");
    const deltas = s.events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta);
    expect(deltas.length).toBeGreaterThan(1);
    const text = deltas.join("");
    expect(text).toContain("lorazepam");
    expect(done.response.status).toBe("completed");
    expect(done.response.output[0].content[0].text).toBe(text);
    expect(JSON.parse(done.response.metadata.citations)[0]).toMatchObject({ i: 1, t: "Status epilepticus" });
    expect(done.response.usage.output_tokens).toBeGreaterThan(0);
    const order = s.events.map((e) => e.type).filter((t) => t.startsWith("response."));
    expect(order[0]).toBe("response.created");
    expect(order.at(-1)).toBe("response.done");
    expect(s.problems).toEqual([]);
  });

  it("stores the turn in the session's conversation", async () => {
    const conversation = await call("POST", "/api/conversations", { token: alice.access, json: {} });
    const s = await openRealtime(`/v1/realtime?conversation_id=${conversation.body.id}`, { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send(textItem(`status epilepticus ${WORD} second dose`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done");
    const messages = await call("GET", `/api/conversations/${conversation.body.id}/messages`, { token: alice.access });
    expect(messages.body.items.map((m: Event) => m.role)).toEqual(["user", "assistant"]);
    expect(messages.body.items[1].citations[0].title).toBe("Status epilepticus");
  });

  it("answers bad input with an error event and keeps the connection", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send("{not json");
    s.send({ type: "no.such.event" });
    s.send({ type: "input_audio_buffer.append", audio: "***" });
    s.send({
      type: "session.update",
      session: { type: "realtime", audio: { input: { format: { type: "audio/pcm", rate: 16000 } } } },
    });
    s.send(`{"type":"input_audio_buffer.append","audio":"${"A".repeat(5 * 1024 * 1024)}"}`);
    s.socket?.send(new Uint8Array([0, 159, 146, 150, 255]));
    await s.until(() => s.events.filter((e) => e.type === "error").length >= 6);
    const codes = s.events.filter((e) => e.type === "error").map((e) => e.error.code);
    expect(codes).toEqual([
      "invalid_json",
      "unknown_event",
      expect.any(String),
      expect.any(String),
      "frame_too_large",
      "invalid_frame",
    ]);
    s.send({ type: "session.update", session: { type: "realtime", instructions: "Be brief." } });
    await s.until((e) => e.type === "session.updated");
    expect(s.closed()).toBeUndefined();
    expect(s.problems).toEqual([]);
  });

  it("ends an audio-only turn with a clear error: no speech-to-text provider", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send({ type: "session.update", session: { type: "realtime", audio: { input: { turn_detection: null } } } });
    await s.until((e) => e.type === "session.updated");
    const silence = btoa(String.fromCharCode(...new Uint8Array(24_000 * 2 * 0.2)));
    s.send({ type: "input_audio_buffer.append", audio: silence });
    s.send({ type: "input_audio_buffer.commit" });
    await s.until((e) => e.type === "input_audio_buffer.committed");
    s.send({ type: "response.create" });
    const error = await s.until((e) => e.type === "error");
    expect(error.error.code).toBe("transcription_unavailable");
    expect(error.error.message).toMatch(/OPENAI_API_KEY/);
  });

  it("throttles a client that floods audio, then disconnects it with a reason", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send({ type: "session.update", session: { type: "realtime", audio: { input: { turn_detection: null } } } });
    const twoSeconds = btoa(String.fromCharCode(...new Uint8Array(24_000 * 2 * 2)));
    for (let i = 0; i < 16; i++) s.send({ type: "input_audio_buffer.append", audio: twoSeconds });
    await s.until((e) => e.type === "error" && e.error.code === "audio_rate_exceeded");
    await s.until((e) => e.type === "error" && e.error.code === "audio_flood");
    for (let i = 0; i < 50 && !s.closed(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.closed()?.code).toBe(1008);
  });
});

describe("realtime voice: every response ends, and bad input is refused at the door", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    setLogLevel("error");
  });

  it("ends a response whose answer throws with an error and response.done failed, logged without the question", async () => {
    const conversation = await call("POST", "/api/conversations", { token: alice.access, json: {} });
    const s = await openRealtime(`/v1/realtime?conversation_id=${conversation.body.id}`, { token: alice.access });
    await s.until((e) => e.type === "session.created");
    // The conversation goes away under the session: answering the turn now throws.
    const deleted = await call("DELETE", `/api/conversations/${conversation.body.id}`, { token: alice.access });
    expect(deleted.status).toBe(204);
    const logs = capturedLogs();
    setLogLevel("warn");
    const question = `private question ${WORD} about status epilepticus`;
    s.send(textItem(question));
    s.send({ type: "response.create" });
    const done = await s.until((e) => e.type === "response.done");
    expect(done.response.status).toBe("failed");
    expect(done.response.status_details).toEqual({
      type: "failed",
      error: { type: "server_error", code: "not_found" },
    });
    const error = s.events.find((e) => e.type === "error");
    expect(error?.error).toMatchObject({ type: "server_error", code: "not_found" });
    expect(s.events.indexOf(error as Event)).toBeLessThan(s.events.indexOf(done));
    expect(s.problems).toEqual([]);
    const line = logs.lines.find((l) => l.message === "voice response failed");
    expect(line).toMatchObject({ level: "warn", code: "NOT_FOUND", response_id: done.response.id });
    expect(logs.raw.join("\n")).not.toContain(WORD);
    // The session is not stuck: the next response.create is answered (and fails the same way).
    s.send({ type: "response.create" });
    await s.until(() => s.events.filter((e) => e.type === "response.done").length === 2);
  });

  it("refuses a NUL anywhere in an event, naming the field, and stores nothing", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send({
      type: "conversation.item.create",
      event_id: "evt_nul",
      item: { id: "item_nul", type: "message", role: "user", content: [{ type: "input_text", text: "a\u0000b" }] },
    });
    const refused = await s.until((e) => e.type === "error");
    expect(refused.error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_value",
      param: "item.content[0].text",
      event_id: "evt_nul",
    });
    expect(refused.error.message).toContain("U+0000");
    s.send({ type: "conversation.item.retrieve", item_id: "item_nul" });
    await s.until((e) => e.type === "error" && e.error.code === "item_not_found");
    s.send({ type: "session.update", session: { type: "realtime", instructions: "x\u0000" } });
    await s.until((e) => e.type === "error" && e.error.param === "session.instructions");
    expect(s.events.some((e) => e.type === "conversation.item.added" || e.type === "session.updated")).toBe(false);
    expect(s.problems).toEqual([]);
  });

  it("answers JSON that is not an event, or nested too deep, with invalid_request_error, never an internal error", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    const deep = `${'{"a":'.repeat(200_000)}1${"}".repeat(200_000)}`;
    const frames = [
      "null",
      "[]",
      "42",
      '"text"',
      '{"type":null}',
      '{"type":"conversation.item.create","item":null}',
      '{"type":"conversation.item.create","item":{"type":"message","role":"user","content":"hi"}}',
      `{"type":"session.update","session":{"type":"realtime","tools":[{"type":"function","name":"f","parameters":${deep}}]}}`,
      `{"type":"response.create","response":{"metadata":${deep}}}`,
    ];
    for (const frame of frames) s.send(frame);
    await s.until(() => s.events.filter((e) => e.type === "error").length === frames.length);
    const errors = s.events.filter((e) => e.type === "error").map((e) => e.error);
    for (const error of errors) expect(error.type).toBe("invalid_request_error");
    expect(errors.at(-2)).toMatchObject({ code: "invalid_value" });
    expect(errors.at(-2).param).toMatch(/^session\.tools\[0\]\.parameters(\.a)+$/);
    expect(errors.at(-1)).toMatchObject({ code: "invalid_value" });
    s.send({ type: "session.update", session: { type: "realtime", instructions: "Be brief." } });
    await s.until((e) => e.type === "session.updated");
    expect(s.problems).toEqual([]);
  });
});

describe.skipIf(!fixtures)("realtime voice: server VAD on real speech (espeak-ng)", () => {
  it.each(fixtures?.fixtures.filter((f) => f.segments.length === 1) ?? [])(
    "$name: speech_started and speech_stopped within ±100 ms of the speech",
    async (fixture) => {
      const s = await openRealtime("/v1/realtime", { token: alice.access });
      await s.until((e) => e.type === "session.created");
      s.send({
        type: "session.update",
        session: {
          type: "realtime",
          audio: { input: { format: fixture.format, turn_detection: { type: "server_vad", create_response: false } } },
        },
      });
      await s.until((e) => e.type === "session.updated");
      const bytes = Uint8Array.from(atob(fixture.audio), (ch) => ch.charCodeAt(0));
      const chunk = fixture.format.type === "audio/pcm" ? 960 : 160; // 20 ms
      for (let i = 0; i < bytes.length; i += chunk) {
        s.send({
          type: "input_audio_buffer.append",
          audio: btoa(String.fromCharCode(...bytes.subarray(i, i + chunk))),
        });
      }
      const started = await s.until((e) => e.type === "input_audio_buffer.speech_started");
      const stopped = await s.until((e) => e.type === "input_audio_buffer.speech_stopped");
      const [speech] = fixture.segments;
      expect(Math.abs(started.audio_start_ms - (speech?.startMs ?? 0))).toBeLessThanOrEqual(100);
      expect(Math.abs(stopped.audio_end_ms - (speech?.endMs ?? 0))).toBeLessThanOrEqual(100);
      await s.until((e) => e.type === "input_audio_buffer.committed");
      expect(s.problems).toEqual([]);
    },
  );
});

describe.skipIf(!fixtures)("realtime voice: VAD times are session-wide", () => {
  it("keeps counting from the session's first audio after a settings change", async () => {
    const fixture = fixtures?.fixtures.find((f) => f.name === "question") ?? fixtures?.fixtures[0];
    if (!fixture) return;
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    const vad = (threshold: number) => ({
      type: "session.update",
      session: {
        type: "realtime",
        audio: {
          input: { format: fixture.format, turn_detection: { type: "server_vad", threshold, create_response: false } },
        },
      },
    });
    const bytes = Uint8Array.from(atob(fixture.audio), (ch) => ch.charCodeAt(0));
    const chunk = fixture.format.type === "audio/pcm" ? 960 : 160;
    const sendAll = () => {
      for (let i = 0; i < bytes.length; i += chunk) {
        s.send({
          type: "input_audio_buffer.append",
          audio: btoa(String.fromCharCode(...bytes.subarray(i, i + chunk))),
        });
      }
    };
    s.send(vad(0.5));
    sendAll();
    await s.until((e) => e.type === "input_audio_buffer.committed");
    s.send(vad(0.55));
    sendAll();
    await s.until(() => s.events.filter((e) => e.type === "input_audio_buffer.speech_started").length === 2);
    const second = s.events.filter((e) => e.type === "input_audio_buffer.speech_started")[1];
    const expected = fixture.durationMs + (fixture.segments[0]?.startMs ?? 0);
    expect(Math.abs((second?.audio_start_ms ?? 0) - expected)).toBeLessThanOrEqual(100);
  });
});

describe("voice preferences", () => {
  it("returns defaults, saves, and refuses values out of range", async () => {
    const user = await signedInUser();
    const initial = await call("GET", "/api/voice/preferences", { token: user.access });
    expect(initial.body).toEqual({ voice: "marin", speed: 1, language: "en", vad_sensitivity: 0.5 });
    const saved = { voice: "cedar", speed: 1.2, language: "en-GB", vad_sensitivity: 0.8 };
    expect((await call("PUT", "/api/voice/preferences", { token: user.access, json: saved })).status).toBe(200);
    const after = await call("GET", "/api/voice/preferences", { token: user.access });
    expect(after.body.voice).toBe("cedar");
    expect(after.body.vad_sensitivity).toBeCloseTo(0.8);
    const bad = await call("PUT", "/api/voice/preferences", { token: user.access, json: { ...saved, speed: 9 } });
    expect(bad.status).toBe(422);
    const s = await openRealtime("/v1/realtime", { token: user.access });
    const created = await s.until((e) => e.type === "session.created");
    expect(created.session.audio.output.voice).toBe("cedar");
  });

  it("stores a sensitivity too small for the real column as 0, not a 500 (found by the fuzzer)", async () => {
    const user = await signedInUser();
    const tiny = { voice: "cedar", speed: 1, language: "en", vad_sensitivity: 5e-324 };
    const saved = await call("PUT", "/api/voice/preferences", { token: user.access, json: tiny });
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    expect((await call("GET", "/api/voice/preferences", { token: user.access })).body.vad_sensitivity).toBe(0);
  });
});

describe("voice metrics", () => {
  it("counts sessions, turns, latencies and errors in /metrics", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send("{not json");
    s.send(textItem(`status epilepticus ${WORD}`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done");
    s.socket?.close(1000, "bye");
    const wanted = [
      'voiceassist_voice_sessions_started_total{mode="local"}',
      'voiceassist_voice_errors_total{code="invalid_json"}',
      'voiceassist_voice_time_to_first_seconds_count{kind="text"}',
      'voiceassist_voice_turn_latency_seconds_count{outcome="completed"}',
      'voiceassist_voice_sessions_ended_total{reason="client_closed"}',
    ];
    let text = "";
    for (let i = 0; i < 50 && !wanted.every((w) => text.includes(w)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = await (await callRaw("GET", "/metrics", { token: OPERATOR_TOKEN })).text();
    }
    for (const line of wanted) expect(text).toContain(line);
  });
});

describe("voice SLO metrics, local mode", () => {
  afterEach(() => vi.restoreAllMocks());

  it("times each connect from the upgrade request to session.created, once, and a refused connect not at all", async () => {
    const connects = metricSamples("voice_connect_seconds");
    // The start is the Worker's own clock: a client cannot set it with the internal header.
    const s = await openRealtime("/v1/realtime", { token: alice.access, headers: { [VOICE_UPGRADE_AT_HEADER]: "0" } });
    await s.until((e) => e.type === "session.created");
    expect(connects()).toEqual([{ labels: ["local"], value: expect.any(Number) }]);
    expect(connects()[0]?.value).toBeLessThan(3600);
    const ticket = await call("POST", "/api/voice/sessions", { token: alice.access, json: {} });
    const t = await openRealtime(ticket.body.url);
    await t.until((e) => e.type === "session.created");
    const reused = (await openRealtime(ticket.body.url)).res;
    expect(reused.status).toBe(401);
    // A refused ticket is a problem like every other error (the fuzzer found it as plain text).
    expect(reused.headers.get("content-type")).toBe("application/problem+json");
    expect(await reused.json()).toMatchObject({ code: "UNAUTHORIZED", requestId: reused.headers.get("x-request-id") });
    expect((await openRealtime("/v1/realtime", { token: "nope" })).res.status).toBe(401);
    s.send(textItem(`status epilepticus ${WORD}`));
    s.send({ type: "response.create" });
    await s.until((e) => e.type === "response.done");
    expect(connects().map((c) => c.labels)).toEqual([["local"], ["local"]]);
    for (const { value } of connects()) expect(value).toBeGreaterThanOrEqual(0);
  });

  it("sets voice_sessions_active to the sessions connected now, in the 5-minute job", async () => {
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    const gauge = metricSamples("voice_sessions_active");
    await recordVoiceGauges(env);
    const result = (await db.execute(
      sql`select count(*)::int as active from voice_sessions where status = 'active'`,
    )) as unknown as { rows: { active: number }[] };
    const active = result.rows[0]?.active ?? 0;
    expect(active).toBeGreaterThan(0);
    expect(gauge()).toEqual([{ labels: [], value: active }]);
  });

  it("records no first transcript: local mode has no speech-to-text, so a spoken turn gets none", async () => {
    const transcripts = metricSamples("voice_first_transcript_seconds");
    const s = await openRealtime("/v1/realtime", { token: alice.access });
    await s.until((e) => e.type === "session.created");
    s.send({ type: "session.update", session: { type: "realtime", audio: { input: { turn_detection: null } } } });
    s.send({ type: "input_audio_buffer.append", audio: btoa(String.fromCharCode(...new Uint8Array(9600))) });
    s.send({ type: "input_audio_buffer.commit" });
    await s.until((e) => e.type === "conversation.item.done");
    expect(s.events.filter((e) => e.type.startsWith("conversation.item.input_audio_transcription"))).toEqual([]);
    expect(transcripts()).toEqual([]);
  });
});

describe("realtime voice: a session ends when its credential does", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    setLogLevel("error");
  });

  type Socket = Awaited<ReturnType<typeof openRealtime>>;
  /** The user's newest voice session row. */
  const sessionOf = async (user: TestUser) => {
    const result = (await db.execute(
      sql`select id, status, ended_reason from voice_sessions where user_id = ${user.id} order by created_at desc limit 1`,
    )) as unknown as { rows: { id: string; status: string; ended_reason: string | null }[] };
    return result.rows[0] as { id: string; status: string; ended_reason: string | null };
  };
  /** The session's re-check, as its alarm runs it every SOCKET_RECHECK_MS; false when none was armed. */
  const recheck = async (user: TestUser) =>
    runDurableObjectAlarm(env.VOICE_SESSION.get(env.VOICE_SESSION.idFromName((await sessionOf(user)).id)));
  const connected = async (path: string, options: SocketOptions = {}) => {
    const s = await openRealtime(path, options);
    await s.until((e) => e.type === "session.created");
    return s;
  };
  const endedBy = async (s: Socket, user: TestUser, reason: RegExp) => {
    const error = await s.until((e) => e.type === "error");
    expect(error.error).toMatchObject({
      type: "invalid_request_error",
      code: "session_expired",
      message: expect.stringMatching(reason),
    });
    for (let i = 0; i < 250 && !s.closed(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.closed()?.code).toBe(1008);
    expect(await sessionOf(user)).toMatchObject({ status: "ended", ended_reason: "credential_ended" });
    expect(s.problems).toEqual([]);
  };
  const stillOpen = async (s: Socket) => {
    s.send({ type: "session.update", session: { type: "realtime", instructions: "Be brief." } });
    await s.until((e) => e.type === "session.updated");
    expect(s.events.some((e) => e.type === "error")).toBe(false);
    expect(s.closed()).toBeUndefined();
  };

  it("checks every SOCKET_RECHECK_MS (at most 30 s) and ends a logged-out session's socket", async () => {
    expect(SOCKET_RECHECK_MS).toBeLessThanOrEqual(30_000);
    const user = await signedInUser();
    const s = await connected("/v1/realtime", { token: user.access });
    expect(await recheck(user)).toBe(true);
    await stillOpen(s);
    expect(await recheck(user)).toBe(true); // re-armed while the client is connected
    expect((await call("POST", "/api/auth/logout", { token: user.access })).status).toBe(204);
    expect(await recheck(user)).toBe(true);
    await endedBy(s, user, /session has ended/);
  });

  it("ends a session whose API key is revoked", async () => {
    const user = await signedInUser();
    const key = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "voice bot" } });
    const s = await connected("/api/voice/realtime", {
      protocols: ["realtime", `openai-insecure-api-key.${key.body.key}`],
    });
    expect((await call("DELETE", `/api/users/me/api-keys/${key.body.id}`, { token: user.access })).status).toBe(204);
    expect(await recheck(user)).toBe(true);
    await endedBy(s, user, /API key/);
  });

  it("ends a ticket's session when its user is deleted, and a token's when the token expires", async () => {
    const user = await signedInUser();
    const minted = await call("POST", "/api/voice/sessions", { token: user.access, json: {} });
    const byTicket = await connected(minted.body.url);
    // As if the next re-check ran after the minting token's expiry: a ticket's session lives on with its session.
    vi.spyOn(socketRecheck, "now").mockReturnValue(Date.now() + 16 * 60_000);
    expect(await recheck(user)).toBe(true);
    await stillOpen(byTicket);
    vi.mocked(socketRecheck.now).mockRestore();
    expect((await call("DELETE", `/api/admin/users/${user.id}`, { token: admin.access })).status).toBe(200);
    expect(await recheck(user)).toBe(true);
    await endedBy(byTicket, user, /no longer exists/);

    const other = await signedInUser();
    const byToken = await connected("/v1/realtime", { token: other.access });
    vi.spyOn(socketRecheck, "now").mockReturnValue(Date.now() + 16 * 60_000);
    expect(await recheck(other)).toBe(true);
    await endedBy(byToken, other, /access token has expired/);
  });

  it("ends the session of a deactivated user, and keeps one whose user only changed role", async () => {
    const user = await signedInUser();
    const second = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: user.password },
      ip: freshIp(),
    });
    const s = await connected("/v1/realtime", { token: second.body.access_token });
    const promoted = await call("PATCH", `/api/admin/users/${user.id}/role`, {
      token: admin.access,
      json: { role: "viewer" },
    });
    expect(promoted.status).toBe(200);
    expect(await recheck(user)).toBe(true);
    await stillOpen(s);
    expect((await call("POST", `/api/admin/users/${user.id}/deactivate`, { token: admin.access })).status).toBe(200);
    expect(await recheck(user)).toBe(true);
    await endedBy(s, user, /deactivated/);
  });

  it("keeps the session, and says so in the log, when the database does not answer", async () => {
    const user = await signedInUser();
    const s = await connected("/v1/realtime", { token: user.access });
    expect((await call("POST", "/api/auth/logout", { token: user.access })).status).toBe(204);
    const down = { execute: () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432")) };
    vi.spyOn(socketRecheck, "database").mockReturnValue(down as unknown as Database);
    const logs = capturedLogs();
    setLogLevel("warn");
    expect(await recheck(user)).toBe(true);
    await stillOpen(s);
    expect(logs.lines).toContainEqual(
      expect.objectContaining({ level: "warn", message: expect.stringMatching(/database did not answer/) }),
    );
    vi.mocked(socketRecheck.database).mockRestore();
    expect(await recheck(user)).toBe(true); // still armed: once the database answers, the session ends
    await endedBy(s, user, /session has ended/);
  });
});
