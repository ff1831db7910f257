import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  VOICE_CONVERSATION_HEADER,
  VOICE_SESSION_HEADER,
  VOICE_UPGRADE_AT_HEADER,
  VOICE_USER_HEADER,
} from "../../workers/voice-session.ts";
import type { AppEnv } from "../app-env.ts";
import { ownConversation } from "../conversations/store.ts";
import { enforceDailyCap } from "../costs/daily-cap.ts";
import { createDb } from "../db/client.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { principalOf, requireUser, signIn } from "../middleware/auth.ts";
import { CREDENTIAL_HEADER, socketCredential, ticketCredential } from "../sockets/credential.ts";
import { REQUEST_ID_HEADER } from "../sockets/tickets.ts";
import {
  createVoiceSession,
  loadPreferences,
  ownVoiceSession,
  savePreferences,
  type VoiceSessionRow,
} from "../voice/sessions.ts";
import { upstreamSettings } from "../voice/upstream.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

// Browser clients built for OpenAI put the key in a subprotocol; Node clients send Authorization.
const KEY_PROTOCOL = "openai-insecure-api-key.";

const voiceSession = (env: Env, id: string) => env.VOICE_SESSION.get(env.VOICE_SESSION.idFromName(id));

const Preferences = z
  .object({
    voice: z.string().trim().min(1).max(40),
    speed: z.number().min(0.25).max(1.5),
    language: z.string().trim().min(2).max(16).describe("BCP 47, e.g. en or en-GB"),
    vad_sensitivity: z
      .number()
      .min(0)
      .max(1)
      // The column is a real: Postgres refuses a value that underflows it (5e-324) instead of storing 0.
      .transform((value) => (Math.fround(value) === 0 ? 0 : value))
      .describe("0: only loud, close speech; 1: quiet speech too"),
  })
  .openapi("VoicePreferences");

const VoiceSession = z
  .object({
    id: z.uuid(),
    conversation_id: z.uuid().nullable(),
    mode: z.enum(["local", "upstream"]),
    model: z.string(),
    status: z.enum(["created", "active", "ended"]),
    ended_reason: z.string().nullable(),
    usage: z.object({
      audio_in_seconds: z.number(),
      audio_out_seconds: z.number(),
      input_tokens: z.number().int(),
      output_tokens: z.number().int(),
      cost_usd: z.number(),
      turns: z.number().int(),
      barge_ins: z.number().int(),
    }),
    created_at: z.string(),
    started_at: z.string().nullable(),
    ended_at: z.string().nullable(),
  })
  .openapi("VoiceSession");

const sessionJson = (row: VoiceSessionRow): z.infer<typeof VoiceSession> => ({
  id: row.id,
  conversation_id: row.conversationId,
  mode: row.mode,
  model: row.model,
  status: row.status,
  ended_reason: row.endedReason,
  usage: {
    audio_in_seconds: row.audioInMs / 1000,
    audio_out_seconds: row.audioOutMs / 1000,
    input_tokens: row.inputTokens,
    output_tokens: row.outputTokens,
    cost_usd: row.costUsd,
    turns: row.turns,
    barge_ins: row.bargeIns,
  },
  created_at: row.createdAt.toISOString(),
  started_at: row.startedAt?.toISOString() ?? null,
  ended_at: row.endedAt?.toISOString() ?? null,
});

/**
 * A new session row for the caller, in their conversation if one is named (404 if it is not theirs).
 * Upstream mode spends money: a caller at the daily cap is refused here, before any upgrade or ticket.
 */
async function newSessionFor(c: Context<AppEnv>, userId: string, conversationId: string | undefined) {
  await enforceDailyCap(c.var.config, c.env, userId, "voice");
  const db = createDb(c.var.config);
  if (conversationId) await ownConversation(db, userId, conversationId);
  return createVoiceSession(db, {
    userId,
    conversationId: conversationId ?? null,
    mode: c.var.config.OPENAI_API_KEY ? "upstream" : "local",
    model: c.var.config.VOICE_REALTIME_MODEL,
  });
}

const realtimeRoute = (path: string) =>
  createRoute({
    method: "get",
    path,
    tags: ["voice"],
    summary: "Realtime voice over a WebSocket, speaking the OpenAI Realtime (GA) protocol",
    description:
      "Auth: Authorization: Bearer <access token or API key>, the subprotocol openai-insecure-api-key.<token>, or ?session_id=&ticket= from POST /api/voice/sessions. Never a long-lived token in the URL. " +
      "The credential is checked again every 30 s: once it has ended (logout, revoked key, deactivation, expired token), an error event session_expired, then close 1008.",
    request: {
      query: z.object({
        model: z.string().max(100).optional().describe("accepted for OpenAI clients; VOICE_REALTIME_MODEL decides"),
        conversation_id: z.uuid().optional().describe("store the turns in this conversation"),
        session_id: z.uuid().optional(),
        ticket: z.string().min(1).max(128).optional(),
      }),
    },
    responses: {
      101: { description: "Switching protocols" },
      400: problem("Not a WebSocket upgrade"),
      401: problem("No valid credential or ticket"),
      404: problem("No such conversation (or not yours)"),
      429: problem("Daily spending cap reached (upstream mode): BUDGET_EXCEEDED, Retry-After until midnight UTC"),
    },
  });

/** Authenticates at the handshake and hands the socket to the session's Durable Object. */
async function connect(c: Context<AppEnv>, query: { conversation_id?: string; session_id?: string; ticket?: string }) {
  // Taken first: the session's voice_connect_seconds counts from here, sign-in and session row included.
  const upgradeAt = Date.now();
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError("BAD_REQUEST", "Connect with a WebSocket upgrade (Upgrade: websocket).");
  }
  const headers = new Headers(c.req.raw.headers);
  for (const name of [VOICE_USER_HEADER, VOICE_SESSION_HEADER, VOICE_CONVERSATION_HEADER, CREDENTIAL_HEADER]) {
    headers.delete(name);
  }
  headers.set(VOICE_UPGRADE_AT_HEADER, String(upgradeAt));
  headers.set(REQUEST_ID_HEADER, c.var.requestId);
  if (query.ticket) {
    if (!query.session_id) throw new ApiError("UNAUTHORIZED", "A ticket needs its session_id.");
    const stub = voiceSession(c.env, query.session_id);
    await stub.prepare(upstreamSettings(c.var.config));
    return stub.fetch(new Request(c.req.raw, { headers }));
  }
  const protocols = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const token = protocols.find((p) => p.startsWith(KEY_PROTOCOL))?.slice(KEY_PROTOCOL.length);
  const principal = token ? await signIn(c, { bearer: token }) : await signIn(c);
  const session = await newSessionFor(c, principal.userId, query.conversation_id);
  headers.set(VOICE_USER_HEADER, principal.userId);
  headers.set(VOICE_SESSION_HEADER, session.id);
  if (session.conversationId) headers.set(VOICE_CONVERSATION_HEADER, session.conversationId);
  // The session checks this credential again while the socket is open.
  headers.set(CREDENTIAL_HEADER, JSON.stringify(socketCredential(principal)));
  const stub = voiceSession(c.env, session.id);
  await stub.prepare(upstreamSettings(c.var.config));
  return stub.fetch(new Request(c.req.raw, { headers }));
}

export const voiceRoutes = createRouter()
  .openapi(realtimeRoute("/api/voice/realtime"), (c) => connect(c, c.req.valid("query")))
  .openapi(realtimeRoute("/v1/realtime"), (c) => connect(c, c.req.valid("query")))
  .openapi(
    createRoute({
      method: "post",
      path: "/api/voice/sessions",
      tags: ["voice"],
      summary: "Start a voice session: a single-use ticket (60 s) to connect without a token",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { body: jsonBody(z.strictObject({ conversation_id: z.uuid().optional() })) },
      responses: {
        201: jsonResponse(
          "The session and its ticket",
          VoiceSession.extend({ ticket: z.string(), expires_at: z.string(), url: z.string() }),
        ),
        404: problem("No such conversation (or not yours)"),
        429: problem("Daily spending cap reached (upstream mode): BUDGET_EXCEEDED, Retry-After until midnight UTC"),
      },
    }),
    async (c) => {
      const principal = principalOf(c);
      const session = await newSessionFor(c, principal.userId, c.req.valid("json").conversation_id);
      const { ticket, expiresAt } = await voiceSession(c.env, session.id).mintTicket({
        userId: principal.userId,
        sessionId: session.id,
        conversationId: session.conversationId,
        credential: ticketCredential(principal),
      });
      const url = `/api/voice/realtime?session_id=${session.id}&ticket=${ticket}`;
      return c.json({ ...sessionJson(session), ticket, expires_at: new Date(expiresAt).toISOString(), url }, 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/voice/sessions/{id}",
      tags: ["voice"],
      summary: "A voice session: status and usage (audio seconds in and out, tokens, cost)",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: z.object({ id: z.uuid() }) },
      responses: { 200: jsonResponse("The session", VoiceSession), 404: problem("No such session (or not yours)") },
    }),
    async (c) => {
      const row = await ownVoiceSession(createDb(c.var.config), principalOf(c).userId, c.req.valid("param").id);
      return c.json(sessionJson(row), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/voice/preferences",
      tags: ["voice"],
      summary: "Your voice preferences (defaults until you save some)",
      security: signedIn,
      middleware: [requireUser] as const,
      responses: { 200: jsonResponse("Preferences", Preferences), 401: problem("Not signed in") },
    }),
    async (c) => {
      const p = await loadPreferences(createDb(c.var.config), principalOf(c).userId);
      return c.json({ voice: p.voice, speed: p.speed, language: p.language, vad_sensitivity: p.vadSensitivity }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/api/voice/preferences",
      tags: ["voice"],
      summary: "Save your voice preferences; new sessions use them",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { body: jsonBody(Preferences.strict()) },
      responses: { 200: jsonResponse("Saved", Preferences), 422: problem("A value out of range") },
    }),
    async (c) => {
      const body = c.req.valid("json");
      await savePreferences(createDb(c.var.config), principalOf(c).userId, {
        voice: body.voice,
        speed: body.speed,
        language: body.language,
        vadSensitivity: body.vad_sensitivity,
      });
      return c.json(body, 200);
    },
  );
