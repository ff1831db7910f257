import { describe, expect, it } from "vitest";
import {
  CLIENT_EVENT_TYPES,
  type ClientEvent,
  DEFAULT_VAD,
  errorEvent,
  functionCallItem,
  functionCallOutputItem,
  mergeSession,
  messageItem,
  newId,
  newResponse,
  newSession,
  parseClientEvent,
  responseUsage,
  type ServerEvent,
  type ServerEventType,
  type Session,
  serverEvent,
  storeItem,
} from "../../src/voice/protocol.ts";
import { documentedExamples, eventTypes, validateClientEvent, validateServerEvent } from "../realtime-conformance.ts";

// Documented examples that contradict their own schema: nulls where the schema allows none, beta-era shapes, a typo.
const EXAMPLE_DEVIATIONS: Record<string, string> = {
  "conversation.item.input_audio_transcription.failed": "error.param is null; the schema says string",
  "conversation.item.retrieved": "beta content part: type 'audio' with format 'pcm16'",
  "input_audio_buffer.dtmf_event_received": "type has a leading space",
  "response.created": "status_details and usage are null; the schema says object",
  "response.done": "status_details is null; the schema says object",
  "response.output_item.done": "beta content part: type 'text'",
  "session.created": "audio.input.transcription, noise_reduction and include are null",
  "session.updated": "audio.input.transcription, noise_reduction and include are null",
  "transcription_session.updated": "beta transcription session without client_secret",
};

const accepted = (event: ClientEvent | Record<string, unknown>) => {
  const parsed = parseClientEvent(JSON.stringify(event));
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.event;
};

const rejected = (text: string) => {
  const parsed = parseClientEvent(text);
  if (parsed.ok) throw new Error(`accepted: ${text}`);
  expect(validateServerEvent(parsed.error)).toEqual([]);
  return parsed.error;
};

const updated = (current: Session, session: Record<string, unknown>) => {
  const event = accepted({ type: "session.update", session: { type: "realtime", ...session } });
  if (event.type !== "session.update") throw new Error(event.type);
  return mergeSession(current, event.session);
};

describe("conformance validator", () => {
  it("accepts every documented server example except the known deviations, and flags those", () => {
    for (const type of eventTypes("server")) {
      const problems = documentedExamples("server", type).flatMap(validateServerEvent);
      expect({ type, failing: problems.length > 0 }).toEqual({ type, failing: type in EXAMPLE_DEVIATIONS });
    }
  });

  it("reports a broken event, an unknown type and a non-event", () => {
    const [example] = documentedExamples("server", "response.output_text.delta") as Record<string, unknown>[];
    const broken: Record<string, unknown> = { ...example, output_index: "0" };
    delete broken.delta;
    const problems = validateServerEvent(broken);
    expect(problems.some((p) => p.startsWith("#/output_index:"))).toBe(true);
    expect(problems.some((p) => p.includes('"delta"'))).toBe(true);
    expect(validateServerEvent({ type: "response.text.delta", event_id: "event_1" })).toEqual([
      '#/type: unknown server event type "response.text.delta"',
    ]);
    expect(validateServerEvent("nope")).toHaveLength(1);
  });

  it("reads OpenAPI `nullable` as an allowed null", () => {
    // RealtimeSessionCreateRequestGA.tracing is `nullable: true` beside a oneOf that has no null branch.
    expect(validateClientEvent({ type: "session.update", session: { type: "realtime", tracing: null } })).toEqual([]);
    expect(validateClientEvent({ type: "session.update", session: { type: "realtime", tracing: 5 } })).not.toEqual([]);
  });
});

describe("server event builders", () => {
  const session = updated(newSession("gpt-realtime"), {
    instructions: "Answer from the knowledge base.",
    tools: [{ type: "function", name: "search_kb", parameters: { type: "object", properties: {} } }],
    audio: { input: { transcription: { model: "whisper-1" }, noise_reduction: { type: "near_field" } } },
  });
  const user = storeItem({ type: "message", role: "user", content: [{ type: "input_audio", transcript: "hello" }] });
  const typed = messageItem("user", [{ type: "input_text", text: "hi" }]);
  const system = messageItem("system", [{ type: "input_text", text: "be brief" }]);
  const spoken = messageItem("assistant", [{ type: "output_audio", transcript: "Hi there" }]);
  const written = messageItem("assistant", [{ type: "output_text", text: "Hi" }], "in_progress");
  const call = functionCallItem("search_kb", '{"q":"dose"}');
  const output = functionCallOutputItem(call.call_id, '{"hits":[]}');
  const response = newResponse(session, {}, newId("conv"));
  const ref = { response_id: response.id, item_id: spoken.id, output_index: 0, content_index: 0 };
  const fn = { response_id: response.id, item_id: call.id, output_index: 1, call_id: call.call_id };
  const usage = responseUsage({ text: 120, audio: 40 }, { text: 12, audio: 80 });
  const speech = { item_id: user.id };

  // One entry per server event type: the compiler insists on a sample for each.
  const samples: { [T in ServerEventType]: ServerEvent<T>[] } = {
    error: [errorEvent({ code: "item_not_found", message: "No such item.", param: "item_id", event_id: "evt_1" })],
    "session.created": [serverEvent("session.created", { session: newSession("gpt-realtime") })],
    "session.updated": [serverEvent("session.updated", { session })],
    "input_audio_buffer.speech_started": [
      serverEvent("input_audio_buffer.speech_started", { ...speech, audio_start_ms: 120 }),
    ],
    "input_audio_buffer.speech_stopped": [
      serverEvent("input_audio_buffer.speech_stopped", { ...speech, audio_end_ms: 2400 }),
    ],
    "input_audio_buffer.committed": [
      serverEvent("input_audio_buffer.committed", { ...speech, previous_item_id: null }),
      serverEvent("input_audio_buffer.committed", { ...speech, previous_item_id: system.id }),
    ],
    "input_audio_buffer.cleared": [serverEvent("input_audio_buffer.cleared", {})],
    "conversation.item.added": [user, typed, system, written, call, output].map((item) =>
      serverEvent("conversation.item.added", { item, previous_item_id: null }),
    ),
    "conversation.item.done": [serverEvent("conversation.item.done", { item: spoken, previous_item_id: user.id })],
    "conversation.item.retrieved": [serverEvent("conversation.item.retrieved", { item: output })],
    "conversation.item.deleted": [serverEvent("conversation.item.deleted", { item_id: typed.id })],
    "conversation.item.truncated": [
      serverEvent("conversation.item.truncated", { item_id: spoken.id, content_index: 0, audio_end_ms: 900 }),
    ],
    "conversation.item.input_audio_transcription.delta": [
      serverEvent("conversation.item.input_audio_transcription.delta", { ...speech, content_index: 0, delta: "hel" }),
    ],
    "conversation.item.input_audio_transcription.completed": [
      serverEvent("conversation.item.input_audio_transcription.completed", {
        ...speech,
        content_index: 0,
        transcript: "hello",
        usage: { type: "duration", seconds: 1.4 },
      }),
      serverEvent("conversation.item.input_audio_transcription.completed", {
        ...speech,
        content_index: 0,
        transcript: "hello",
        usage: { type: "tokens", input_tokens: 13, output_tokens: 2, total_tokens: 15 },
      }),
    ],
    "conversation.item.input_audio_transcription.failed": [
      serverEvent("conversation.item.input_audio_transcription.failed", {
        ...speech,
        content_index: 0,
        error: { type: "transcription_error", code: "audio_unintelligible", message: "Could not transcribe." },
      }),
    ],
    "response.created": [
      serverEvent("response.created", { response }),
      serverEvent("response.created", { response: newResponse(session, { conversation: "none" }) }),
    ],
    "response.done": [
      serverEvent("response.done", { response: { ...response, status: "completed", output: [spoken, call], usage } }),
      serverEvent("response.done", {
        response: {
          ...response,
          status: "cancelled",
          status_details: { type: "cancelled", reason: "turn_detected" },
          usage: responseUsage({ text: 0, audio: 0 }, { text: 0, audio: 0 }),
        },
      }),
    ],
    "response.output_item.added": [
      serverEvent("response.output_item.added", {
        response_id: response.id,
        output_index: 0,
        item: messageItem("assistant", [], "in_progress"),
      }),
    ],
    "response.output_item.done": [spoken, call].map((item, output_index) =>
      serverEvent("response.output_item.done", { response_id: response.id, output_index, item }),
    ),
    "response.content_part.added": [
      serverEvent("response.content_part.added", { ...ref, part: { type: "audio", transcript: "" } }),
      serverEvent("response.content_part.added", { ...ref, part: { type: "text", text: "" } }),
    ],
    "response.content_part.done": [
      serverEvent("response.content_part.done", { ...ref, part: { type: "audio", transcript: "Hi there" } }),
    ],
    "response.output_text.delta": [serverEvent("response.output_text.delta", { ...ref, delta: "Hi" })],
    "response.output_text.done": [serverEvent("response.output_text.done", { ...ref, text: "Hi" })],
    "response.output_audio.delta": [serverEvent("response.output_audio.delta", { ...ref, delta: "AAAA" })],
    "response.output_audio.done": [serverEvent("response.output_audio.done", ref)],
    "response.output_audio_transcript.delta": [
      serverEvent("response.output_audio_transcript.delta", { ...ref, delta: "Hi" }),
    ],
    "response.output_audio_transcript.done": [
      serverEvent("response.output_audio_transcript.done", { ...ref, transcript: "Hi there" }),
    ],
    "response.function_call_arguments.delta": [
      serverEvent("response.function_call_arguments.delta", { ...fn, delta: '{"q":' }),
    ],
    "response.function_call_arguments.done": [
      serverEvent("response.function_call_arguments.done", { ...fn, name: call.name, arguments: call.arguments }),
    ],
    "rate_limits.updated": [
      serverEvent("rate_limits.updated", {
        rate_limits: [
          { name: "requests", limit: 1000, remaining: 999, reset_seconds: 60 },
          { name: "tokens", limit: 50000, remaining: 49950, reset_seconds: 0.5 },
        ],
      }),
    ],
  };

  it("covers documented server event types only", () => {
    expect(Object.keys(samples).filter((t) => !eventTypes("server").includes(t))).toEqual([]);
  });

  it("builds events that pass the published schemas", () => {
    for (const event of Object.values(samples).flat()) {
      expect({ type: event.type, problems: validateServerEvent(event) }).toEqual({ type: event.type, problems: [] });
      expect(event.event_id).toMatch(/^event_[0-9A-Za-z]{21}$/);
    }
  });

  it("gives objects OpenAI-style ids and GA defaults", () => {
    const fresh = newSession("gpt-realtime");
    expect(fresh).toMatchObject({ type: "realtime", object: "realtime.session", output_modalities: ["audio"] });
    expect(fresh.id).toMatch(/^sess_[0-9A-Za-z]{21}$/);
    expect(fresh.audio.input).toEqual({ format: { type: "audio/pcm", rate: 24000 }, turn_detection: DEFAULT_VAD });
    expect(user.id).toMatch(/^item_/);
    expect(call.call_id).toMatch(/^call_/);
    expect(response).toMatchObject({ object: "realtime.response", status: "in_progress", output: [] });
    expect(response.id).toMatch(/^resp_/);
    expect(usage).toMatchObject({ total_tokens: 252, input_tokens: 160, output_tokens: 92 });
  });
});

describe("client events", () => {
  it("parses every documented example of the events handled here", () => {
    for (const type of CLIENT_EVENT_TYPES) {
      for (const example of documentedExamples("client", type) as Record<string, unknown>[]) {
        const event = accepted(example);
        expect(event.type).toBe(type);
        expect(event.event_id).toBe(example.event_id);
      }
    }
  });

  it("answers documented events it does not handle with an error, not a throw", () => {
    expect(CLIENT_EVENT_TYPES.filter((t) => !eventTypes("client").includes(t))).toEqual([]);
    for (const type of eventTypes("client").filter((t) => !CLIENT_EVENT_TYPES.includes(t))) {
      const error = rejected(JSON.stringify(documentedExamples("client", type)[0]));
      expect(error.error).toMatchObject({ code: "unknown_event", param: "type" });
    }
  });

  it.each([
    ['{"type": "session.update"', "invalid_json", null, null],
    ["[1, 2]", "invalid_event", null, null],
    ['{"event_id": "evt_1"}', "invalid_event", null, "evt_1"],
    ['{"event_id": "evt_2", "type": "session.delete"}', "unknown_event", "type", "evt_2"],
    [
      '{"event_id": "evt_3", "type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0}',
      "missing_required_parameter",
      "audio_end_ms",
      "evt_3",
    ],
    [
      '{"type": "conversation.item.truncate", "item_id": "item_1", "content_index": "0", "audio_end_ms": 5}',
      "invalid_type",
      "content_index",
      null,
    ],
    [
      '{"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text"}]}}',
      "missing_required_parameter",
      "item.content[0].text",
      null,
    ],
    ['{"type": "conversation.item.create", "item": {"type": "mcp_call"}}', "invalid_value", "item.type", null],
    ['{"type": "input_audio_buffer.append", "audio": "not base64!"}', "invalid_value", "audio", null],
    [
      '{"type": "response.create", "response": {"conversation": "conv_1"}}',
      "invalid_value",
      "response.conversation",
      null,
    ],
    // A NUL cannot be stored, whatever the field: refused before the schema, named as OpenAI names params.
    [
      '{"event_id": "evt_4", "type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a\\u0000"}]}}',
      "invalid_value",
      "item.content[0].text",
      "evt_4",
    ],
    ['{"type": "conversation.item.delete", "item_id": "item\\u0000"}', "invalid_value", "item_id", null],
    [
      '{"type": "response.create", "response": {"metadata": {"k\\u0000": "v"}}}',
      "invalid_value",
      "response.metadata",
      null,
    ],
    ['{"type\\u0000": "x"}', "invalid_value", null, null],
    [
      `{"type": "response.create", "response": {"metadata": ${"[".repeat(100)}${"]".repeat(100)}}}`,
      "invalid_value",
      `response.metadata${"[0]".repeat(62)}`,
      null,
    ],
  ])("rejects %s with %s", (text, code, param, eventId) => {
    const error = rejected(text);
    expect(error.event_id).toMatch(/^event_/);
    expect(error.error).toMatchObject({ type: "invalid_request_error", code, param, event_id: eventId });
    expect(error.error.message).not.toBe("");
  });

  it("checks multi-megabyte audio chunks without overflowing the regex stack", () => {
    const audio = "AAAA".repeat(4_000_000);
    expect(accepted({ type: "input_audio_buffer.append", audio })).toMatchObject({ audio });
    expect(rejected(JSON.stringify({ type: "input_audio_buffer.append", audio: `${audio}!` })).error.param).toBe(
      "audio",
    );
  });

  it("carries response.create overrides into the response", () => {
    const event = accepted({
      type: "response.create",
      response: { output_modalities: ["text"], conversation: "none", metadata: { topic: "dose" } },
    });
    if (event.type !== "response.create") throw new Error(event.type);
    const response = newResponse(newSession("gpt-realtime"), event.response, "conv_1");
    expect(response).toMatchObject({ output_modalities: ["text"], metadata: { topic: "dose" } });
    expect(response).not.toHaveProperty("conversation_id");
    expect(validateServerEvent(serverEvent("response.created", { response }))).toEqual([]);
  });
});

describe("session.update", () => {
  const base = newSession("gpt-realtime");

  it("applies the documented example", () => {
    const [example] = documentedExamples("client", "session.update");
    const event = accepted(example as Record<string, unknown>);
    if (event.type !== "session.update") throw new Error(event.type);
    const session = mergeSession(base, event.session);
    expect(session.tools.map((t) => t.name)).toEqual(["display_color_palette"]);
    expect(session.instructions).toMatch(/creative assistant/);
    expect(session.audio).toEqual(base.audio);
    expect(validateServerEvent(serverEvent("session.updated", { session }))).toEqual([]);
  });

  it("merges audio settings field by field", () => {
    const session = updated(base, {
      audio: {
        input: { format: { type: "audio/pcmu" }, turn_detection: { type: "server_vad", threshold: 0.8 } },
        output: { format: { type: "audio/pcma" }, voice: "marin" },
      },
    });
    expect(session.audio.input.format).toEqual({ type: "audio/pcmu" });
    expect(session.audio.input.turn_detection).toEqual({ ...DEFAULT_VAD, threshold: 0.8 });
    expect(session.audio.output).toEqual({ format: { type: "audio/pcma" }, voice: "marin", speed: 1 });
    expect(session.id).toBe(base.id);
    const pcm = updated(session, { audio: { input: { format: { type: "audio/pcm" } } } });
    expect(pcm.audio.input.format).toEqual({ type: "audio/pcm", rate: 24000 });
    expect(validateServerEvent(serverEvent("session.updated", { session: pcm }))).toEqual([]);
  });

  it("keeps tuned VAD settings across updates and switches features off with null", () => {
    const tuned = updated(base, {
      audio: { input: { turn_detection: { type: "server_vad", silence_duration_ms: 800 } } },
    });
    const tuned2 = updated(tuned, { audio: { input: { turn_detection: { type: "server_vad", threshold: 0.3 } } } });
    expect(tuned2.audio.input.turn_detection).toMatchObject({ threshold: 0.3, silence_duration_ms: 800 });
    const manual = updated(tuned2, {
      audio: { input: { turn_detection: null, transcription: { model: "whisper-1" } } },
    });
    expect(manual.audio.input.turn_detection).toBeNull();
    expect(updated(manual, { audio: { input: { turn_detection: { type: "server_vad" } } } }).audio.input).toMatchObject(
      { turn_detection: DEFAULT_VAD, transcription: { model: "whisper-1" } },
    );
    const quiet = updated(manual, { audio: { input: { transcription: null } } });
    expect(quiet.audio.input).not.toHaveProperty("transcription");
    expect(validateServerEvent(serverEvent("session.updated", { session: quiet }))).toEqual([]);
  });

  it.each([
    [{ audio: { input: { format: { type: "audio/pcm", rate: 16000 } } } }, "session.audio.input.format.rate"],
    [{ audio: { output: { format: { type: "audio/wav" } } } }, "session.audio.output.format.type"],
    [
      { audio: { input: { turn_detection: { type: "server_vad", threshold: 1.5 } } } },
      "session.audio.input.turn_detection.threshold",
    ],
    [
      { audio: { input: { turn_detection: { type: "server_vad", threshold: -0.1 } } } },
      "session.audio.input.turn_detection.threshold",
    ],
    [{ audio: { input: { turn_detection: { type: "semantic_vad" } } } }, "session.audio.input.turn_detection.type"],
    [{ audio: { output: { speed: 3 } } }, "session.audio.output.speed"],
    [{ output_modalities: ["text", "audio"] }, "session.output_modalities"],
    [{ output_modalities: ["video"] }, "session.output_modalities[0]"],
    [{ tool_choice: "sometimes" }, "session.tool_choice"],
  ])("rejects %j naming %s", (session, param) => {
    const error = rejected(
      JSON.stringify({ event_id: "evt_9", type: "session.update", session: { type: "realtime", ...session } }),
    );
    expect(error.error).toMatchObject({ code: "invalid_value", param, event_id: "evt_9" });
  });

  it("requires the session type", () => {
    const error = rejected('{"type": "session.update", "session": {"instructions": "hi"}}');
    expect(error.error).toMatchObject({ code: "missing_required_parameter", param: "session.type" });
  });
});
