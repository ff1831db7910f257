import { runCron } from "../workers/cron.ts";
import "../workers/handlers.ts";
import "../workers/jobs.ts";
import { consumeQueue } from "../workers/queue-consumer.ts";
import { app } from "./app.ts";
import type { Env } from "./env.ts";

export { ChatRoom } from "../workers/chat-room.ts";
export { FlagHub } from "../workers/flag-hub.ts";
export { MetricsAggregator } from "../workers/metrics-aggregator.ts";
export { RateLimiter } from "../workers/rate-limiter.ts";
export { VoiceSession } from "../workers/voice-session.ts";

export default {
  fetch: app.fetch,
  queue: consumeQueue,
  scheduled: runCron,
} satisfies ExportedHandler<Env>;
