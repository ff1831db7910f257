// Issue #15: a voice session evicted mid-session loses nothing: items survive hibernation, and after an eviction
// that closed its socket a new session on the same conversation sees each stored turn once (sessions cannot be
// resumed). evictDurableObject first lets requests in flight drain (about 15 s here).
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { queryRows } from "../../src/db/client.ts";
import { evictions, storedRows, thread } from "./eviction-helpers.ts";
import { call } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";
import { openRealtime, textItem } from "./voice-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `vellorine${run.replace(/\d/g, "")}`;
// An eviction through evictDurableObject waits up to 15 s for what is in flight.
const EVICTION_TEST_MS = 60_000;

let admin: TestUser;

beforeAll(async () => {
  admin = await signedInUser("admin");
  await addIndexedDocument(admin.access, {
    title: "Meningitis",
    sourceType: `eviction-${run}`,
    text: `Bacterial meningitis ${WORD} is treated with ceftriaxone 2 g intravenously at once. Give dexamethasone before or with the first dose.`,
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("VoiceSession evicted mid-session", () => {
  const voiceObject = (sessionId: string) => env.VOICE_SESSION.get(env.VOICE_SESSION.idFromName(sessionId));
  /** The user's voice sessions, oldest first. */
  const sessionsOf = (user: TestUser) =>
    queryRows<{ id: string; status: string; ended_reason: string | null; turns: number }>(
      db,
      sql`select id, status, ended_reason, turns from voice_sessions where user_id = ${user.id} order by created_at`,
    );
  const connect = async (user: TestUser, conversationId: string) => {
    const s = await openRealtime(`/v1/realtime?conversation_id=${conversationId}`, { token: user.access });
    expect(s.res.status).toBe(101);
    await s.until((e) => e.type === "session.created");
    return s;
  };
  type Voice = Awaited<ReturnType<typeof connect>>;
  /** A text turn, answered (the session's nth response.done), and its bookkeeping done (the row counts it). */
  const turn = async (user: TestUser, s: Voice, text: string, nth: number) => {
    s.send(textItem(text));
    s.send({ type: "response.create" });
    await s.until(() => s.events.filter((e) => e.type === "response.done").length === nth);
    const done = s.events.filter((e) => e.type === "response.done")[nth - 1];
    expect(done?.response.status).toBe("completed");
    // The session counts the turn after the client has its answer: wait for that before evicting.
    await vi.waitFor(async () => expect((await sessionsOf(user)).at(-1)?.turns).toBe(nth), {
      timeout: 10_000,
      interval: 50,
    });
  };

  it(
    "evicted with its socket hibernated: the socket stays usable, earlier items are kept, the next turn is stored once",
    async () => {
      const user = await signedInUser();
      const conversation = (await call("POST", "/api/conversations", { token: user.access, json: {} })).body.id;
      const s = await connect(user, conversation);
      await turn(user, s, `meningitis ${WORD} antibiotic`, 1);
      const [session] = await sessionsOf(user);
      const firstItem = s.events.find((e) => e.type === "conversation.item.done")?.item;

      await evictDurableObject(voiceObject(session!.id), { webSockets: "hibernate" });

      expect(s.closed()).toBeUndefined();
      s.send({ type: "conversation.item.retrieve", item_id: firstItem.id });
      expect((await s.until((e) => e.type === "conversation.item.retrieved")).item).toEqual(firstItem);
      await turn(user, s, `meningitis ${WORD} steroid`, 2);

      const rows = await storedRows(conversation);
      expect(rows.map((r) => [r.role, r.client_message_id, r.reply_status])).toEqual([
        ["user", firstItem.id, "answered"],
        ["assistant", null, null],
        ["user", expect.any(String), "answered"],
        ["assistant", null, null],
      ]);
      expect((await thread(user, conversation)).map((m) => m.id)).toEqual(rows.map((r) => r.id));
      expect(await sessionsOf(user)).toEqual([{ id: session!.id, status: "active", ended_reason: null, turns: 2 }]);
      expect(s.problems).toEqual([]);
    },
    EVICTION_TEST_MS,
  );

  it.each(evictions)(
    "evicted with its socket closed (%s): the client reconnects as a new session to every stored turn once; the dropped session ends at its next alarm",
    async (_how, evict) => {
      const user = await signedInUser();
      const conversation = (await call("POST", "/api/conversations", { token: user.access, json: {} })).body.id;
      const s = await connect(user, conversation);
      await turn(user, s, `meningitis ${WORD} antibiotic`, 1);
      const [dropped] = await sessionsOf(user);
      const before = await storedRows(conversation);
      expect(before).toHaveLength(2);

      await evict(voiceObject(dropped!.id));
      expect(await s.closing()).toBeDefined();
      // Its alarm (armed at connect) finds no client: the session ends, and keeps nothing in storage.
      expect(await runDurableObjectAlarm(voiceObject(dropped!.id))).toBe(true);
      expect((await sessionsOf(user))[0]).toEqual({ ...dropped, status: "ended", ended_reason: "client_closed" });
      const kept = await runInDurableObject(
        voiceObject(dropped!.id),
        async (_, state) => (await state.storage.list()).size,
      );
      expect(kept).toBe(0);

      // A dropped voice client comes back as a new session (there is no resuming one), on the same conversation.
      const again = await connect(user, conversation);
      expect((await storedRows(conversation)).map((r) => r.id)).toEqual(before.map((r) => r.id));
      await turn(user, again, `meningitis ${WORD} steroid`, 1);
      const sessions = await sessionsOf(user);
      expect(sessions.map((x) => [x.status, x.turns])).toEqual([
        ["ended", 1],
        ["active", 1],
      ]);
      const rows = await storedRows(conversation);
      expect(rows.slice(0, 2).map((r) => r.id)).toEqual(before.map((r) => r.id));
      expect(rows.map((r) => [r.role, r.reply_status])).toEqual([
        ["user", "answered"],
        ["assistant", null],
        ["user", "answered"],
        ["assistant", null],
      ]);
      expect((await thread(user, conversation)).map((m) => m.id)).toEqual(rows.map((r) => r.id));
      expect([...s.problems, ...again.problems]).toEqual([]);
    },
    EVICTION_TEST_MS,
  );
});
