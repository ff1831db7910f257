// What vitest.config.ts provides to the suites inside workerd (inject("stack")).
export interface TestStackInfo {
  env: Record<string, string>;
  databaseHasVector: boolean;
  redis: boolean;
  receiverUrl: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: TestStackInfo;
  }
}
