import { createRoute, z } from "@hono/zod-openapi";
import { deleteFeedback, rateMessage } from "../../conversations/feedback.ts";
import { ownConversation } from "../../conversations/store.ts";
import { createDb } from "../../db/client.ts";
import { recordMetrics } from "../../metrics/record.ts";
import { principalOf, requireUser } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "../router.ts";
import { Feedback, feedbackJson, MessageParam } from "./schemas.ts";

// Satisfaction: rate an answer of your own conversation up or down, with an optional comment.

const FeedbackRequest = z
  .strictObject({
    rating: z.enum(["up", "down"]),
    comment: z
      .string()
      .trim()
      .min(1, "must not be empty")
      .max(2_000)
      .optional()
      .describe("why; rating again without a comment removes the earlier one"),
  })
  .openapi("FeedbackRequest");

const notRatable = "No such conversation or assistant message (or not yours)";

export const feedbackRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/conversations/{id}/messages/{message_id}/feedback",
      tags: ["conversations"],
      summary: "Rate an answer up or down (one rating per user and answer: rating again replaces it)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: MessageParam, body: jsonBody(FeedbackRequest) },
      responses: {
        200: jsonResponse("Your earlier rating, replaced", Feedback),
        201: jsonResponse("Your rating, stored", Feedback),
        401: problem("Not signed in"),
        404: problem(notRatable),
        422: problem("An unknown rating, an empty or too long comment, or an unknown field"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { id, message_id } = c.req.valid("param");
      const { rating, comment } = c.req.valid("json");
      const userId = principalOf(c).userId;
      await ownConversation(db, userId, id);
      const { row, created } = await rateMessage(db, userId, id, message_id, { rating, comment: comment ?? null });
      await recordMetrics(c.env, c.executionCtx, { name: "answer_feedback_total", labels: { rating }, value: 1 });
      return c.json(feedbackJson(row), created ? 201 : 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/conversations/{id}/messages/{message_id}/feedback",
      tags: ["conversations"],
      summary: "Withdraw your rating of an answer",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: MessageParam },
      responses: {
        204: { description: "Removed" },
        401: problem("Not signed in"),
        404: problem(`${notRatable}, or you have not rated it`),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { id, message_id } = c.req.valid("param");
      const userId = principalOf(c).userId;
      await ownConversation(db, userId, id);
      await deleteFeedback(db, userId, id, message_id);
      return c.body(null, 204);
    },
  );
