import { createRoute, z } from "@hono/zod-openapi";
import { recordAudit } from "../audit/record.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { flagHub } from "../flags/publish.ts";
import { requireAdmin } from "../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

// The durable-object-eviction chaos experiment (docs/chaos.md) resets a live object through this route, which
// is open only with CHAOS_EVICTION=on (never in production: the configuration refuses it).

/** The objects a session lives in, by the name the route takes: a conversation id, a voice session id, or none. */
const objects = {
  "chat-room": (env: Env, name: string) => env.CHAT_ROOM.get(env.CHAT_ROOM.idFromName(name)),
  "voice-session": (env: Env, name: string) => env.VOICE_SESSION.get(env.VOICE_SESSION.idFromName(name)),
  "flag-hub": (env: Env) => flagHub(env),
} as const;

const EvictRequest = z.object({
  object: z.enum(["chat-room", "voice-session", "flag-hub"]),
  name: z
    .string()
    .trim()
    .min(1)
    .max(128)
    .optional()
    .describe("chat-room: the conversation id; voice-session: the voice session id; flag-hub: not used"),
});

const Evicted = z.object({
  object: z.enum(["chat-room", "voice-session", "flag-hub"]),
  name: z.string().nullable(),
  evicted: z.literal(true),
});

export const adminChaosRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/api/admin/chaos/evict",
    tags: ["admin"],
    security: signedIn,
    middleware: [requireAdmin] as const,
    summary: "Reset a chat, voice or flag-hub Durable Object (CHAOS_EVICTION=on only)",
    description:
      "The object loses its memory and its open sockets and streams close, as in an eviction with sockets closed or a deploy; what it stored stays. Audited as admin.chaos.evicted.",
    request: { body: jsonBody(EvictRequest) },
    responses: {
      200: jsonResponse("The object was reset", Evicted),
      404: problem("CHAOS_EVICTION is off"),
    },
  }),
  async (c) => {
    if (c.var.config.CHAOS_EVICTION !== "on") {
      throw new ApiError("NOT_FOUND", "Durable Object eviction is off: set CHAOS_EVICTION=on (local runs only).");
    }
    const { object, name } = c.req.valid("json");
    if (object !== "flag-hub" && !name) {
      throw new ApiError("VALIDATION_FAILED", `The request body is invalid: body.name is required for ${object}.`, {
        errors: [{ field: "body.name", message: `is required for ${object}` }],
      });
    }
    try {
      await objects[object](c.env, name ?? "").evict();
    } catch (error) {
      // ctx.abort() rejects the call that made it: that rejection is the eviction having happened.
      if (!/evicted/.test(String((error as Error)?.message))) throw error;
    }
    await recordAudit(c.var.config, {
      action: "admin.chaos.evicted",
      target: { type: object, id: name ?? null },
    });
    return c.json({ object, name: name ?? null, evicted: true as const }, 200);
  },
);
