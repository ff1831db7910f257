import { randomBytes } from "node:crypto";
import { runMigrations } from "../scripts/db/migrate.ts";
import { startLocalStack } from "../scripts/local-stack/index.ts";
import type { TestStackInfo } from "./provided.ts";
import { startReceiver } from "./receiver.ts";
import { startOpenAiStandIn } from "./standins/openai.ts";
import { startQdrantStandIn } from "./standins/qdrant.ts";
import { startRealtimeStandIn } from "./standins/realtime-upstream.ts";
import { prepareVoiceFixtures } from "./voice-fixtures.ts";

const STOP = Symbol.for("voiceassist.testStack.stop");
type Holder = { [STOP]?: () => Promise<void> };

/**
 * Starts the local stack inside the vitest process and migrates it; test/global-setup.ts stops it.
 * TEST_DATABASE_URL / REDIS_URL select the machine's servers instead of the embedded defaults.
 */
export async function startTestStack(): Promise<TestStackInfo> {
  // Voice fixtures (espeak-ng + sox, cached) build while the stack starts.
  const voice = prepareVoiceFixtures();
  const stack = await startLocalStack({ databaseUrl: process.env.TEST_DATABASE_URL, redisUrl: process.env.REDIS_URL });
  const receiver = await startReceiver();
  const openai = await startOpenAiStandIn();
  const qdrantApiKey = randomBytes(16).toString("hex");
  const qdrant = await startQdrantStandIn({ apiKey: qdrantApiKey });
  // The OpenAI Realtime stand-in (WebSocket upstream of the voice relay).
  const realtime = await startRealtimeStandIn();
  (globalThis as Holder)[STOP] = async () => {
    await realtime.stop();
    await qdrant.stop();
    await openai.stop();
    await receiver.stop();
    await stack.stop();
  };
  await runMigrations(stack.env.DATABASE_URL as string, stack.env.NEON_LOCAL_PROXY);
  for (const notice of stack.notices) console.warn(`[test stack] ${notice}`);
  return {
    env: stack.env,
    databaseHasVector: stack.databaseHasVector,
    redis: stack.redis,
    receiverUrl: receiver.url,
    openaiUrl: openai.url,
    qdrantUrl: qdrant.url,
    qdrantApiKey,
    realtimeUrl: realtime.url,
    ...(await voiceFixturesInfo(voice)),
  };
}

async function voiceFixturesInfo(
  pending: ReturnType<typeof prepareVoiceFixtures>,
): Promise<Pick<TestStackInfo, "voiceFixtures" | "voiceFixturesMissing">> {
  const voice = await pending;
  if (voice.missing) console.warn(`[test stack] voice fixture suites skip: ${voice.missing}`);
  return voice.fixtures ? { voiceFixtures: voice.fixtures } : { voiceFixturesMissing: voice.missing };
}
