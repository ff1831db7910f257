// What vitest.config.ts provides to the suites inside workerd (inject("stack")).
export interface TestStackInfo {
  env: Record<string, string>;
  databaseHasVector: boolean;
  redis: boolean;
  receiverUrl: string;
  /** The OpenAI-compatible stand-in (test/standins/openai.ts); the SDK's baseURL is this + "/v1". */
  openaiUrl: string;
  /** The Qdrant stand-in (test/standins/qdrant.ts) and the api-key it requires. */
  qdrantUrl: string;
  qdrantApiKey: string;
  /**
   * The OpenAI Realtime (GA) stand-in (test/standins/realtime-upstream.ts): WebSocket at
   * realtimeUrl + "/v1/realtime?model=<m>" (so OPENAI_BASE_URL = realtimeUrl + "/v1"); GET /__sessions, POST /__reset.
   */
  realtimeUrl: string;
  /** Speech fixtures from test/voice-fixtures.ts; absent when espeak-ng/sox are missing (see voiceFixturesMissing). */
  voiceFixtures?: VoiceFixtures;
  voiceFixturesMissing?: string;
}

// Voice fixtures (test/voice-fixtures.ts): synthesised speech with known boundaries.
export interface VoiceFixture {
  name: string;
  description: string;
  text: string;
  format: { type: "audio/pcm"; rate: 24000 } | { type: "audio/pcmu" } | { type: "audio/pcma" };
  /** The audio as a client sends it: base64 of the format's bytes. */
  audio: string;
  durationMs: number;
  /** Speech spans in ms from the start of the clip (where the trimmed speech was placed). */
  segments: { startMs: number; endMs: number }[];
  /** G.711 fixtures: the 8 kHz s16le samples sox encoded (base64), to cross-check the codecs. */
  linear8k?: string;
}

export interface VoiceFixtures {
  /** espeak-ng and sox versions. */
  generator: string;
  /** The pause between the two sentences of "two-sentences". */
  pauseMs: number;
  fixtures: VoiceFixture[];
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: TestStackInfo;
  }
}
