import { app } from "./app.ts";
import type { Env } from "./env.ts";
import { runCron } from "./jobs/cron.ts";
import { messageHandlers } from "./jobs/handlers.ts";
import { consumeQueue } from "./jobs/queue.ts";
import { cronJobs } from "./jobs/schedule.ts";

export { AlertManager } from "../workers/alert-manager.ts";
export { ChatRoom } from "../workers/chat-room.ts";
export { FlagHub } from "../workers/flag-hub.ts";
export { MetricsAggregator } from "../workers/metrics-aggregator.ts";
export { RateLimiter } from "../workers/rate-limiter.ts";
export { VoiceSession } from "../workers/voice-session.ts";

export default {
  fetch: app.fetch,
  queue: (batch, env, ctx) => consumeQueue(messageHandlers, batch, env, ctx),
  scheduled: (controller, env, ctx) => runCron(cronJobs, controller, env, ctx),
} satisfies ExportedHandler<Env>;
