import { existsSync } from "node:fs";

export interface TestStackInfo {
  env: Record<string, string>;
  databaseHasVector: boolean;
  redis: boolean;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: TestStackInfo;
  }
}

const STACK = Symbol.for("voiceassist.testStack");
type Holder = { [STACK]?: { stop(): Promise<void> } };

/**
 * Starts the local stack inside the vitest process (it dies with it); global-setup stops it.
 * TEST_DATABASE_URL / REDIS_URL select the machine's servers instead of the embedded defaults.
 */
export async function startTestStack(): Promise<TestStackInfo> {
  const modulePath = new URL("../scripts/local-stack/index.ts", import.meta.url);
  if (!existsSync(modulePath)) {
    return { env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" }, databaseHasVector: false, redis: false };
  }
  const { startLocalStack } = await import(modulePath.href);
  const stack = await startLocalStack({ databaseUrl: process.env.TEST_DATABASE_URL, redisUrl: process.env.REDIS_URL });
  (globalThis as Holder)[STACK] = stack;
  return { env: stack.env, databaseHasVector: stack.databaseHasVector, redis: stack.redis };
}

export async function stopTestStack(): Promise<void> {
  await (globalThis as Holder)[STACK]?.stop();
}
