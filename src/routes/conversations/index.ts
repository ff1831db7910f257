import { createRouter } from "../router.ts";
import { conversationRecordRoutes } from "./conversations.ts";
import { feedbackRoutes } from "./feedback.ts";
import { messageRoutes } from "./messages.ts";
import { usageRoutes } from "./usage.ts";

/** The conversations API: conversations, their messages and turns, ratings of answers, and the caller's usage. */
export const conversationRoutes = createRouter()
  .route("/", conversationRecordRoutes)
  .route("/", messageRoutes)
  .route("/", feedbackRoutes)
  .route("/", usageRoutes);
