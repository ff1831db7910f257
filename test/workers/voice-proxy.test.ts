import { beforeAll, describe, expect, it } from "vitest";
import { SEARCH_TOOL } from "../../src/voice/grounding.ts";
import { MAX_AUDIO_BYTES } from "../../src/voice/openai-audio.ts";
import { upstreamRequests, withOpenAi } from "./answer-helpers.ts";
import { app, call, callRaw, serve } from "./harness.ts";
import { config, signedInUser, type TestUser } from "./identity-helpers.ts";

// OpenAI's audio endpoints through the app, the real openai SDK talking to the stand-in
// (test/standins/openai.ts).

const run = crypto.randomUUID().slice(0, 8);
let user: TestUser;
/** A user whose saved preferences the routes should follow. */
let tuned: TestUser;

beforeAll(async () => {
  user = await signedInUser();
  tuned = await signedInUser();
  const saved = { voice: "cedar", speed: 1.25, language: "fr-CA", vad_sensitivity: 0.3 };
  const res = await call("PUT", "/api/voice/preferences", { token: tuned.access, json: saved });
  expect(res.status).toBe(200);
});

/** A WAV of `ms` milliseconds of silence at 16 kHz mono. */
function wav(ms: number): Uint8Array {
  const data = 32 * ms;
  const bytes = new Uint8Array(44 + data);
  const view = new DataView(bytes.buffer);
  const ascii = (at: number, text: string) => bytes.set(new TextEncoder().encode(text), at);
  ascii(0, "RIFF");
  view.setUint32(4, 36 + data, true);
  ascii(8, "WAVEfmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, 16_000, true);
  view.setUint32(28, 32_000, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, data, true);
  return bytes;
}

function transcribe(
  token: string | undefined,
  fields: Record<string, string | Blob>,
  overrides: Record<string, unknown> = withOpenAi(),
) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.set(name, value);
  return serve(
    app,
    "/api/voice/transcribe",
    { method: "POST", body: form, headers: token ? { authorization: `Bearer ${token}` } : {} },
    overrides,
  );
}

const synthesize = (token: string, json: unknown, overrides: Record<string, unknown> = withOpenAi()) =>
  callRaw("POST", "/api/voice/synthesize", { token, json, overrides });

const realtimeSession = (token: string, json: unknown, overrides: Record<string, unknown> = withOpenAi()) =>
  callRaw("POST", "/api/voice/realtime-session", { token, json, overrides });

interface SessionAudio {
  input: { transcription: { language: string }; turn_detection: { type: string; threshold: number } };
  output: { voice: string; speed: number };
}

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = await res.json<
    { code: string; detail: string; errors?: { field: string }[] } & Record<string, unknown>
  >();
  expect(body.code).toBe(code);
  return body;
}

describe("POST /api/voice/realtime-session", () => {
  it("mints a secret bound to the grounded instructions, the search tool and the user's preferences", async () => {
    const disclaimer = `Verify against local protocols ${run}.`;
    const res = await realtimeSession(tuned.access, {}, withOpenAi({ RAG_MEDICAL_DISCLAIMER: disclaimer }));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = await res.json<{
      value: string;
      expires_at: number;
      session: Record<string, unknown> & { instructions: string; tools: (typeof SEARCH_TOOL)[]; audio: SessionAudio };
    }>();
    expect(body.value).toMatch(/^ek_/);
    const now = Math.floor(Date.now() / 1000);
    expect(body.expires_at).toBeGreaterThan(now + 100);
    expect(body.expires_at).toBeLessThanOrEqual(now + 121);
    expect(body.session).toMatchObject({ type: "realtime", model: config.VOICE_REALTIME_MODEL });
    expect(body.session.instructions).toContain("search_knowledge_base");
    expect(body.session.instructions).toContain(disclaimer);
    expect(body.session.tools).toEqual([JSON.parse(JSON.stringify(SEARCH_TOOL))]);
    expect(body.session.tools[0]).toMatchObject({
      type: "function",
      name: "search_knowledge_base",
      parameters: {
        required: ["query"],
        properties: { query: { type: "string" }, top_k: { type: "integer", minimum: 1, maximum: 10 } },
      },
    });
    expect(body.session.audio.output).toMatchObject({ voice: "cedar", speed: 1.25 });
    expect(body.session.audio.input.transcription.language).toBe("fr");
    expect(body.session.audio.input.turn_detection).toMatchObject({ type: "server_vad" });
    expect(body.session.audio.input.turn_detection.threshold).toBeCloseTo(0.7);

    const [sent] = await upstreamRequests(disclaimer);
    expect(sent?.body).toMatchObject({ expires_after: { anchor: "created_at", seconds: 120 } });
  });

  it("takes no body at all, or expires_in_seconds within 10..600", async () => {
    const bare = await serve(
      app,
      "/api/voice/realtime-session",
      { method: "POST", headers: { authorization: `Bearer ${user.access}` } },
      withOpenAi(),
    );
    expect(bare.status).toBe(200);
    const longer = await realtimeSession(user.access, { expires_in_seconds: 600 });
    const { expires_at: expiresAt } = await longer.json<{ expires_at: number }>();
    expect(expiresAt).toBeGreaterThan(Date.now() / 1000 + 590);
    const bad = await expectProblem(
      await realtimeSession(user.access, { expires_in_seconds: 5 }),
      422,
      "VALIDATION_FAILED",
    );
    expect(bad.errors?.map((e) => e.field)).toEqual(["body.expires_in_seconds"]);
  });

  it("maps OpenAI failures: 500 → 502, a refused key → 502 naming OPENAI_API_KEY", async () => {
    const failing = withOpenAi({ RAG_MEDICAL_DISCLAIMER: `Check.\n!fault status=500 key=secret-${run}` });
    const body = await expectProblem(await realtimeSession(user.access, {}, failing), 502, "UPSTREAM_UNAVAILABLE");
    expect(body.detail).toContain("OpenAI failed to create a realtime client secret (500)");
    const refused = await expectProblem(
      await realtimeSession(user.access, {}, withOpenAi({ OPENAI_API_KEY: "sk-invalid-voice" })),
      502,
      "UPSTREAM_UNAVAILABLE",
    );
    expect(refused.detail).toContain("OPENAI_API_KEY");
  });
});

describe("POST /api/voice/transcribe", () => {
  it("transcribes an upload with the default model; language and prompt go upstream", async () => {
    const prompt = `!transcript Give glucagon one milligram ${run}`;
    const res = await transcribe(user.access, {
      file: new File([wav(500)], "clip.wav", { type: "audio/wav" }),
      language: "en-GB",
      prompt,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ text: `Give glucagon one milligram ${run}`, language: "en" });
    const [sent] = await upstreamRequests(prompt);
    expect(sent?.body).toMatchObject({
      model: "gpt-4o-mini-transcribe",
      language: "en",
      response_format: "json",
      file: { filename: "clip.wav", size: 44 + 16_000 },
    });
  });

  it("whisper-1 reports the language and duration; a nameless upload is named from its bytes", async () => {
    const prompt = `whisper ${run}`;
    const res = await transcribe(user.access, { file: new Blob([wav(1_500)]), model: "whisper-1", prompt });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      text: `stand-in transcript of ${44 + 48_000} bytes`,
      language: "english",
      duration: 1.5,
    });
    const [sent] = await upstreamRequests(prompt);
    expect(sent?.body.file).toMatchObject({ filename: expect.stringMatching(/\.wav$/) });
  });

  it("415 for a body that is not multipart, or a file that is not audio", async () => {
    const json = await callRaw("POST", "/api/voice/transcribe", {
      token: user.access,
      json: { file: "x" },
      overrides: withOpenAi(),
    });
    await expectProblem(json, 415, "UNSUPPORTED_MEDIA_TYPE");
    const text = await transcribe(user.access, { file: new File(["just some notes"], "notes.txt") });
    const body = await expectProblem(text, 415, "UNSUPPORTED_MEDIA_TYPE");
    expect(body.detail).toContain("wav");
  });

  it("422 for no file, an empty file, a model off the allow-list or a bad language", async () => {
    const noFile = await expectProblem(await transcribe(user.access, { prompt: "x" }), 422, "VALIDATION_FAILED");
    expect(noFile.errors?.map((e) => e.field)).toEqual(["form.file"]);
    const empty = await transcribe(user.access, { file: new File([], "clip.wav") });
    await expectProblem(empty, 422, "VALIDATION_FAILED");
    const model = await transcribe(user.access, { file: new File([wav(10)], "a.wav"), model: "whisper-2" });
    expect((await expectProblem(model, 422, "VALIDATION_FAILED")).errors?.map((e) => e.field)).toEqual(["form.model"]);
    const language = await transcribe(user.access, { file: new File([wav(10)], "a.wav"), language: "english!" });
    await expectProblem(language, 422, "VALIDATION_FAILED");
  });

  it("413 naming the limit for a body over 25 MB, read as it streams", async () => {
    const chunk = new Uint8Array(1024 * 1024);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 30) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await serve(
      app,
      "/api/voice/transcribe",
      {
        method: "POST",
        headers: { authorization: `Bearer ${user.access}`, "content-type": "multipart/form-data; boundary=x" },
        body: stream,
        // @ts-expect-error workerd needs duplex for a streamed request body
        duplex: "half",
      },
      withOpenAi(),
    );
    const body = await expectProblem(res, 413, "PAYLOAD_TOO_LARGE");
    expect(body.limitBytes).toBeGreaterThan(MAX_AUDIO_BYTES);
    expect(body.detail).toContain(String(body.limitBytes));
    expect(sent).toBeLessThan(30); // refused before the whole body was read
  });

  it("maps OpenAI failures: 500 → 502, 429 → 502 saying so", async () => {
    const file = new File([wav(10)], "a.wav");
    const failed = await transcribe(user.access, { file, prompt: `!fault status=500 key=t500-${run}` });
    expect((await expectProblem(failed, 502, "UPSTREAM_UNAVAILABLE")).detail).toContain(
      "OpenAI failed to transcribe the audio (500)",
    );
    const limited = await transcribe(user.access, { file, prompt: `!fault status=429 key=t429-${run}` });
    expect((await expectProblem(limited, 502, "UPSTREAM_UNAVAILABLE")).detail).toContain("rate limiting");
  });
});

describe("POST /api/voice/synthesize", () => {
  it("streams the audio back in the requested format", async () => {
    const text = `Blood cultures before antibiotics ${run}.`;
    const res = await synthesize(user.access, { text, voice: "alloy", speed: 1.5, format: "wav" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("audio/wav");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe("RIFF");
    expect(new TextDecoder().decode(bytes.subarray(8, 12))).toBe("WAVE");
    expect(bytes.length).toBe(44 + text.length * 480); // 10 ms of 24 kHz 16-bit audio per character
    const [sent] = await upstreamRequests(text);
    expect(sent?.body).toMatchObject({
      model: "gpt-4o-mini-tts",
      input: text,
      voice: "alloy",
      speed: 1.5,
      response_format: "wav",
    });
  });

  it("defaults to mp3 and to the caller's voice and speed", async () => {
    const text = `Recheck glucose after fifteen minutes ${run}.`;
    const res = await synthesize(tuned.access, { text });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("audio/mpeg");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(new TextDecoder().decode(bytes.subarray(0, 3))).toBe("ID3");
    const [sent] = await upstreamRequests(text);
    expect(sent?.body).toMatchObject({ voice: "cedar", speed: 1.25, response_format: "mp3" });
  });

  it.each([
    ["text over 4096 characters", { text: "a".repeat(4097) }, "body.text"],
    ["blank text", { text: "   " }, "body.text"],
    ["an unknown voice", { text: "hi", voice: "robot" }, "body.voice"],
    ["an unknown format", { text: "hi", format: "ogg" }, "body.format"],
    ["a speed out of range", { text: "hi", speed: 5 }, "body.speed"],
    ["an unknown field", { text: "hi", pitch: 2 }, "body"],
  ])("422 for %s", async (_name, json, field) => {
    const body = await expectProblem(await synthesize(user.access, json), 422, "VALIDATION_FAILED");
    expect(body.errors?.map((e) => e.field)).toEqual([field]);
  });

  it("415 for a body that is not JSON", async () => {
    const res = await serve(
      app,
      "/api/voice/synthesize",
      { method: "POST", headers: { authorization: `Bearer ${user.access}`, "content-type": "text/plain" }, body: "hi" },
      withOpenAi(),
    );
    await expectProblem(res, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("413 for a JSON body over its small limit", async () => {
    const res = await synthesize(user.access, { text: "a".repeat(40_000) });
    const body = await expectProblem(res, 413, "PAYLOAD_TOO_LARGE");
    expect(body.detail).toContain(String(body.limitBytes));
  });

  it("an upstream 500 → 502, before any audio went out", async () => {
    const res = await synthesize(user.access, { text: `!fault status=500 key=s500-${run}` });
    const body = await expectProblem(res, 502, "UPSTREAM_UNAVAILABLE");
    expect(body.detail).toContain("OpenAI failed to synthesize speech (500)");
  });
});

describe("all three routes", () => {
  const requests = {
    "realtime-session": () => ({ method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
    transcribe: () => {
      const form = new FormData();
      form.set("file", new File([wav(10)], "a.wav"));
      return { method: "POST", body: form };
    },
    synthesize: () => ({ method: "POST", headers: { "content-type": "application/json" }, body: '{"text":"hi"}' }),
  };

  it.each(Object.entries(requests))("%s: 401 without a signed-in user", async (route, init) => {
    const res = await serve(app, `/api/voice/${route}`, init(), withOpenAi());
    await expectProblem(res, 401, "UNAUTHORIZED");
  });

  it.each(Object.entries(requests))("%s: 503 naming OPENAI_API_KEY when there is no key", async (route, init) => {
    const base = init() as RequestInit & { headers?: Record<string, string> };
    const res = await serve(app, `/api/voice/${route}`, {
      ...base,
      headers: { ...base.headers, authorization: `Bearer ${user.access}` },
    });
    const body = await expectProblem(res, 503, "NOT_READY");
    expect(body.detail).toContain("OPENAI_API_KEY");
  });

  const badRequests = {
    "realtime-session": () => ({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"expires_in_seconds":5}',
    }),
    transcribe: () => {
      const form = new FormData();
      form.set("language", "en");
      return { method: "POST", body: form };
    },
    synthesize: () => ({ method: "POST", headers: { "content-type": "application/json" }, body: '{"text":""}' }),
  };

  it.each(Object.entries(badRequests))("%s: bad input is 422 even when there is no key", async (route, init) => {
    const base = init() as RequestInit & { headers?: Record<string, string> };
    const res = await serve(app, `/api/voice/${route}`, {
      ...base,
      headers: { ...base.headers, authorization: `Bearer ${user.access}` },
    });
    const body = await expectProblem(res, 422, "VALIDATION_FAILED");
    expect(body.errors?.length).toBeGreaterThan(0);
  });
});
