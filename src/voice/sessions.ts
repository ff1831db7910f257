import { type AnyColumn, and, eq, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import { voicePreferences, voiceSessions } from "../db/schema/voice.ts";
import { ApiError } from "../errors.ts";
import { newSession, type Session } from "./protocol.ts";

export type VoiceSessionRow = typeof voiceSessions.$inferSelect;
export type VoicePreferences = Omit<typeof voicePreferences.$inferSelect, "userId" | "updatedAt">;

const DEFAULT_PREFERENCES: VoicePreferences = { voice: "marin", speed: 1, language: "en", vadSensitivity: 0.5 };

const notFound = () => new ApiError("NOT_FOUND", "No voice session with this id.");

export async function createVoiceSession(
  db: Database,
  fields: { userId: string; conversationId: string | null; mode: "local" | "upstream"; model: string },
): Promise<VoiceSessionRow> {
  const [row] = await db.insert(voiceSessions).values(fields).returning();
  return row as VoiceSessionRow;
}

/** The caller's session, or 404 (another user's session is indistinguishable from none). */
export async function ownVoiceSession(db: Database, userId: string, id: string): Promise<VoiceSessionRow> {
  const [row] = await db
    .select()
    .from(voiceSessions)
    .where(and(eq(voiceSessions.id, id), eq(voiceSessions.userId, userId)));
  if (!row) throw notFound();
  return row;
}

interface UsageDelta {
  audioInMs?: number;
  audioOutMs?: number;
  inputTokens?: number;
  outputTokens?: number;
  costUsd?: number;
  turns?: number;
  bargeIns?: number;
}

/** Adds to a session's counters in one statement, so concurrent flushes never lose an increment. */
export async function addVoiceUsage(db: Database, id: string, delta: UsageDelta): Promise<void> {
  const add = (column: AnyColumn, value = 0) => sql`${column} + ${value}`;
  await db
    .update(voiceSessions)
    .set({
      audioInMs: add(voiceSessions.audioInMs, delta.audioInMs),
      audioOutMs: add(voiceSessions.audioOutMs, delta.audioOutMs),
      inputTokens: add(voiceSessions.inputTokens, delta.inputTokens),
      outputTokens: add(voiceSessions.outputTokens, delta.outputTokens),
      costUsd: add(voiceSessions.costUsd, delta.costUsd),
      turns: add(voiceSessions.turns, delta.turns),
      bargeIns: add(voiceSessions.bargeIns, delta.bargeIns),
    })
    .where(eq(voiceSessions.id, id));
}

/** Audio received in the session so far (the session counts it; the row follows). */
export async function setVoiceAudioIn(db: Database, id: string, audioInMs: number): Promise<void> {
  await db.update(voiceSessions).set({ audioInMs }).where(eq(voiceSessions.id, id));
}

export async function markVoiceSession(
  db: Database,
  id: string,
  change: { status: "active" } | { status: "ended"; reason: string },
): Promise<void> {
  const now = new Date();
  await db
    .update(voiceSessions)
    .set(
      change.status === "active"
        ? { status: "active", startedAt: sql`coalesce(${voiceSessions.startedAt}, now())` }
        : { status: "ended", endedReason: change.reason, endedAt: now },
    )
    .where(eq(voiceSessions.id, id));
}

export async function loadPreferences(db: Database, userId: string): Promise<VoicePreferences> {
  const [row] = await db.select().from(voicePreferences).where(eq(voicePreferences.userId, userId));
  if (!row) return DEFAULT_PREFERENCES;
  const { userId: _user, updatedAt: _updated, ...preferences } = row;
  return preferences;
}

export async function savePreferences(db: Database, userId: string, preferences: VoicePreferences): Promise<void> {
  await db
    .insert(voicePreferences)
    .values({ userId, ...preferences })
    .onConflictDoUpdate({ target: voicePreferences.userId, set: { ...preferences, updatedAt: new Date() } });
}

/** A new session with the user's voice preferences: voice, speed, and VAD sensitivity as the threshold. */
export async function preferredSession(
  config: Pick<Config, "VOICE_REALTIME_MODEL" | "VOICE_MAX_SESSION_SECONDS">,
  db: Database,
  userId: string,
  mode: "local" | "upstream",
): Promise<Session> {
  const created = newSession(config.VOICE_REALTIME_MODEL, config.VOICE_MAX_SESSION_SECONDS);
  // Local mode has no speech synthesis: it says so by answering in text from the start.
  const session: Session = mode === "upstream" ? created : { ...created, output_modalities: ["text"] };
  const preferences = await loadPreferences(db, userId);
  const detection = session.audio.input.turn_detection;
  return {
    ...session,
    audio: {
      input: {
        ...session.audio.input,
        turn_detection: detection && { ...detection, threshold: 1 - preferences.vadSensitivity },
      },
      output: { ...session.audio.output, voice: preferences.voice, speed: preferences.speed },
    },
  };
}
