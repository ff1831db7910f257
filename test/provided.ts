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
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: TestStackInfo;
  }
}
