// Issue #15: the chat, voice and flag-hub Durable Objects evicted mid-session lose nothing. Each object is evicted
// with the real test helper (evictDurableObject, sockets hibernated or closed) and through its own evict()
// (ctx.abort, what the durable-object-eviction chaos experiment calls). A client then goes on or reconnects, and
// every stored turn, message and flag change is there exactly once.
// evictDurableObject first lets requests in flight drain: a socket's upgrade request holds it about 15 s here (so
// those tests are slow), and a turn or stream that does not end makes it give up after 30 s. Only evict() cuts one.
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { queryRows } from "../../src/db/client.ts";
import type { Env } from "../../src/env.ts";
import type { Snapshot } from "../../src/flags/model.ts";
import { flagHub } from "../../src/flags/publish.ts";
import type { ChatRoom } from "../../workers/chat-room.ts";
import type { FlagChangeEvent } from "../../workers/flag-hub.ts";
import { withOpenAi } from "./answer-helpers.ts";
import {
  createFlag,
  type EventReader,
  flagPath,
  kvState,
  openStream,
  ruleSetVersion,
  toggleFlag,
  uniqueFlagKey,
  workerEnv,
} from "./flag-helpers.ts";
import { call, openSocket, type SocketMessage } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";
import { openRealtime, textItem } from "./voice-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `vellorine${run.replace(/\d/g, "")}`;
// An eviction through evictDurableObject waits up to 15 s for what is in flight.
const EVICTION_TEST_MS = 60_000;

let admin: TestUser;
let viewer: TestUser;
let alice: TestUser;

beforeAll(async () => {
  [admin, viewer, alice] = await Promise.all([signedInUser("admin"), signedInUser("viewer"), signedInUser()]);
  await addIndexedDocument(admin.access, {
    title: "Meningitis",
    sourceType: `eviction-${run}`,
    text: `Bacterial meningitis ${WORD} is treated with ceftriaxone 2 g intravenously at once. Give dexamethasone before or with the first dose.`,
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

type Stub = { evict(): void | Promise<void> };

/** The object's own evict() (ctx.abort): the call itself is rejected, which is the reset having happened. */
async function resetByEvict(stub: Stub): Promise<void> {
  await expect(Promise.resolve().then(() => stub.evict())).rejects.toThrow(/evicted/);
}

const evictions = [
  [
    "evictDurableObject, sockets closed",
    (stub: DurableObjectStub & Stub) => evictDurableObject(stub, { webSockets: "close" }),
  ],
  ["evict() (ctx.abort)", resetByEvict],
] as const;

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Every row of a conversation, inactive versions included, in thread order. */
const storedRows = (conversationId: string) =>
  queryRows<{
    id: string;
    role: string;
    client_message_id: string | null;
    reply_status: string | null;
    active: boolean;
  }>(
    db,
    sql`select id, role, client_message_id, reply_status, active from messages
         where conversation_id = ${conversationId} order by turn, role desc, version`,
  );

/** The visible thread, as GET /api/conversations/{id}/messages shows it. */
async function thread(owner: TestUser, conversationId: string): Promise<SocketMessage[]> {
  const res = await call("GET", `/api/conversations/${conversationId}/messages`, { token: owner.access });
  expect(res.status).toBe(200);
  expect(res.body.total).toBe(res.body.items.length);
  return res.body.items;
}

describe("ChatRoom evicted mid-session", () => {
  const room = (conversationId: string) => env.CHAT_ROOM.get(env.CHAT_ROOM.idFromName(conversationId));
  const newConversation = async (owner: TestUser) =>
    (await call("POST", "/api/conversations", { token: owner.access, json: {} })).body.id as string;
  const chatSocket = async (owner: TestUser, conversationId: string) => {
    const socket = await openSocket(`/api/realtime/ws?conversation_id=${conversationId}`, {
      protocols: ["voiceassist.chat.v1", `bearer.${owner.access}`],
    });
    expect(socket.res.status).toBe(101);
    await socket.until((f) => f.type === "history");
    return socket;
  };
  type Tab = Awaited<ReturnType<typeof chatSocket>>;
  const framesOf = (tab: Tab, type: string) => tab.messages.filter((f) => f.type === type);
  /** The ids of the messages in the tab's history frame (sent at connect). */
  const historyIds = (tab: Tab) => ((framesOf(tab, "history")[0]?.messages ?? []) as SocketMessage[]).map((m) => m.id);
  /** Sends a message and waits for its answer (the tab's n-th message.done). */
  const ask = async (tab: Tab, content: string, clientMessageId: string, nth: number) => {
    tab.send({ type: "message", content, client_message_id: clientMessageId });
    await tab.until(() => framesOf(tab, "message.done").length === nth);
    return framesOf(tab, "message.done")[nth - 1] as SocketMessage;
  };
  /** Points the live room at the OpenAI stand-in (its env, which request overrides do not reach). An eviction undoes it. */
  const roomAnswersWithOpenAi = (conversationId: string, extra: Record<string, string> = {}) =>
    runInDurableObject(room(conversationId), (instance: ChatRoom) => {
      const self = instance as unknown as { env: Env };
      self.env = { ...self.env, ...withOpenAi(extra) } as unknown as Env;
    });
  /** A question whose answer the stand-in starts, then stalls: the turn is in flight until something ends it. */
  const stalling = (text: string) => `${text}\n!fault stall-after=1 key=${crypto.randomUUID()}`;

  it(
    "evicted with its sockets hibernated: both tabs stay open, the next message is answered to both and stored once",
    async () => {
      const id = await newConversation(alice);
      const [tab, other] = [await chatSocket(alice, id), await chatSocket(alice, id)];
      await ask(tab, `meningitis ${WORD} first dose`, "hib-1", 1);

      await evictDurableObject(room(id), { webSockets: "hibernate" });

      expect(tab.closed()).toBeUndefined();
      expect(other.closed()).toBeUndefined();
      const done = await ask(tab, `meningitis ${WORD} steroid`, "hib-2", 2);
      await other.until(() => framesOf(other, "message.done").length === 2);
      expect(framesOf(other, "message.done")[1]?.message.id).toBe(done.message.id);
      expect(framesOf(tab, "user_message.created").map((f) => f.replayed)).toEqual([false, false]);

      const rows = await storedRows(id);
      expect(rows.map((r) => [r.role, r.client_message_id, r.reply_status])).toEqual([
        ["user", "hib-1", "answered"],
        ["assistant", null, null],
        ["user", "hib-2", "answered"],
        ["assistant", null, null],
      ]);
      expect((await thread(alice, id)).map((m) => m.id)).toEqual(rows.map((r) => r.id));
      // The sockets' credential re-check is still armed after the wake-up.
      expect(await runDurableObjectAlarm(room(id))).toBe(true);
      expect(tab.closed()).toBeUndefined();
    },
    EVICTION_TEST_MS,
  );

  it.each(evictions)(
    "evicted between turns (%s): the client reconnects to every stored turn once, and a resent message is not stored twice",
    async (_how, evict) => {
      const id = await newConversation(alice);
      const tab = await chatSocket(alice, id);
      await ask(tab, `meningitis ${WORD} antibiotic`, "btw-1", 1);
      await ask(tab, `meningitis ${WORD} steroid`, "btw-2", 2);
      const before = await storedRows(id);
      expect(before).toHaveLength(4);

      await evict(room(id));
      expect(await tab.closing()).toBeDefined();

      const again = await chatSocket(alice, id);
      expect(historyIds(again)).toEqual(before.map((r) => r.id));
      expect((await thread(alice, id)).map((m) => m.id)).toEqual(before.map((r) => r.id));

      // The client did not see the answer it was waiting for (as far as it knows): it sends the same message again.
      const replayed = await ask(again, `meningitis ${WORD} steroid`, "btw-2", 1);
      expect(framesOf(again, "user_message.created")).toMatchObject([
        { replayed: true, message: { id: before[2]?.id } },
      ]);
      expect(replayed).toMatchObject({ replayed: true, message: { id: before[3]?.id } });
      expect((await storedRows(id)).map((r) => r.id)).toEqual(before.map((r) => r.id));

      await ask(again, `meningitis ${WORD} contacts`, "btw-3", 2);
      const after = await storedRows(id);
      expect(after.map((r) => r.client_message_id)).toEqual(["btw-1", null, "btw-2", null, "btw-3", null]);
      expect((await thread(alice, id)).map((m) => m.id)).toEqual(after.map((r) => r.id));
    },
    EVICTION_TEST_MS,
  );

  it(
    "evicted with its sockets closed while a message is being answered (evictDurableObject): the eviction waits for the turn, stored once",
    async () => {
      const id = await newConversation(alice);
      const tab = await chatSocket(alice, id);
      await ask(tab, `meningitis ${WORD} antibiotic`, "wait-1", 1);
      tab.send({ type: "message", content: `meningitis ${WORD} steroid`, client_message_id: "wait-2" });
      await evictDurableObject(room(id), { webSockets: "close" });
      expect(await tab.closing()).toBeDefined();

      const rows = await storedRows(id);
      expect(rows.map((r) => [r.role, r.client_message_id, r.reply_status])).toEqual([
        ["user", "wait-1", "answered"],
        ["assistant", null, null],
        ["user", "wait-2", "answered"],
        ["assistant", null, null],
      ]);
      const again = await chatSocket(alice, id);
      expect(historyIds(again)).toEqual(rows.map((r) => r.id));
      const replayed = await ask(again, `meningitis ${WORD} steroid`, "wait-2", 1);
      expect(replayed).toMatchObject({ replayed: true, message: { id: rows[3]?.id } });
      expect((await storedRows(id)).map((r) => r.id)).toEqual(rows.map((r) => r.id));
      expect((await thread(alice, id)).map((m) => m.id)).toEqual(rows.map((r) => r.id));
    },
    EVICTION_TEST_MS,
  );

  // evictDurableObject waits for a turn in flight (and gives up after 30 s if it does not end): only a reset cuts one.
  it("cut off during a turn by evict() (ctx.abort, as a deploy or crash would): the question is kept once, and resending it gets it answered at once", async () => {
    const id = await newConversation(alice);
    const tab = await chatSocket(alice, id);
    await ask(tab, `meningitis ${WORD} antibiotic`, "mid-1", 1);
    await roomAnswersWithOpenAi(id);
    const question = stalling(`meningitis ${WORD} steroid timing`);
    tab.send({ type: "message", content: question, client_message_id: "mid-2" });
    // The question is stored and its answer has started streaming.
    await tab.until(() => framesOf(tab, "user_message.created").length === 2);
    const asked = tab.messages.indexOf(framesOf(tab, "user_message.created")[1] as SocketMessage);
    await tab.until((f) => f.type === "chunk" && tab.messages.indexOf(f) > asked);

    await resetByEvict(room(id));
    expect(await tab.closing()).toBeDefined();
    expect(framesOf(tab, "message.done")).toHaveLength(1);

    const cut = await storedRows(id);
    expect(cut.map((r) => [r.role, r.client_message_id, r.reply_status])).toEqual([
      ["user", "mid-1", "answered"],
      ["assistant", null, null],
      ["user", "mid-2", "pending"],
    ]);
    const again = await chatSocket(alice, id);
    expect(historyIds(again)).toEqual(cut.map((r) => r.id));

    // Answered now, not after the cut-off answer's claim goes stale (CHAT_TIMEOUT_MS + 30 s).
    const answered = await ask(again, question, "mid-2", 1);
    expect(framesOf(again, "user_message.created")).toMatchObject([{ replayed: true, message: { id: cut[2]?.id } }]);
    expect(answered).toMatchObject({ replayed: false, message: { role: "assistant", reply_to: cut[2]?.id } });
    // Sent once more, it is the stored answer, replayed.
    const repeated = await ask(again, question, "mid-2", 2);
    expect(repeated).toMatchObject({ replayed: true, message: { id: answered.message.id } });

    const rows = await storedRows(id);
    expect(rows.map((r) => [r.role, r.client_message_id, r.reply_status, r.active])).toEqual([
      ["user", "mid-1", "answered", true],
      ["assistant", null, null, true],
      ["user", "mid-2", "answered", true],
      ["assistant", null, null, true],
    ]);
    expect((await thread(alice, id)).map((m) => m.id)).toEqual(rows.map((r) => r.id));
  });

  it("releases a question cut off by an eviction at the room's next alarm, so a resend over REST answers it at once", async () => {
    const id = await newConversation(alice);
    const tab = await chatSocket(alice, id);
    await roomAnswersWithOpenAi(id);
    const question = stalling(`meningitis ${WORD} dose`);
    tab.send({ type: "message", content: question, client_message_id: "rest-1" });
    await tab.until((f) => f.type === "chunk");
    await resetByEvict(room(id));
    expect((await storedRows(id)).map((r) => [r.client_message_id, r.reply_status])).toEqual([["rest-1", "pending"]]);

    // Nobody reconnects: the alarm (armed while the socket was open) is the room's next run.
    expect(await runDurableObjectAlarm(room(id))).toBe(true);
    expect((await storedRows(id)).map((r) => [r.client_message_id, r.reply_status])).toEqual([["rest-1", "failed"]]);
    const resent = await call("POST", `/api/conversations/${id}/messages`, {
      token: alice.access,
      json: { content: question, client_message_id: "rest-1" },
    });
    expect(resent.status).toBe(201);
    const rows = await storedRows(id);
    expect(rows.map((r) => [r.role, r.client_message_id, r.reply_status])).toEqual([
      ["user", "rest-1", "answered"],
      ["assistant", null, null],
    ]);
    expect(resent.body.assistant_message.id).toBe(rows[1]?.id);
  });

  it("checks COST_USER_DAILY_CAP_USD before every message: once the socket's own turn reaches it, the next gets BUDGET_EXCEEDED and nothing is stored", async () => {
    const spender = await signedInUser();
    const id = await newConversation(spender);
    // Under the cap when the socket opens (the route checks then too): nothing spent yet.
    const tab = await chatSocket(spender, id);
    await roomAnswersWithOpenAi(id, { COST_USER_DAILY_CAP_USD: "0.000001" });
    const first = await ask(tab, `meningitis ${WORD} antibiotic`, "cap-1", 1);
    expect(first.message).toMatchObject({ provider: "openai" });
    // The answer's cost is written in the background: wait for it.
    const spent = async () =>
      Number(
        (
          await queryRows<{ spent: string | null }>(
            db,
            sql`select sum(cost_usd) as spent from llm_usage where user_id = ${spender.id}`,
          )
        )[0]?.spent ?? 0,
      );
    await vi.waitFor(async () => expect(await spent()).toBeGreaterThan(0.000001), { timeout: 10_000, interval: 50 });

    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    tab.send({ type: "message", content: `meningitis ${WORD} steroid`, client_message_id: "cap-2" });
    const refused = await tab.until((f) => f.type === "error");
    expect(refused).toMatchObject({ code: "BUDGET_EXCEEDED", requestId: expect.any(String) });
    expect(refused.message).toMatch(/daily spending cap of \$0\.000001 \(COST_USER_DAILY_CAP_USD\) is reached/);
    const capped = writes.mock.calls.filter(
      ([p]) => p?.blobs?.[0] === "rate_limited_total" && p.blobs[2] === "cost_cap",
    );
    expect(capped).toHaveLength(1);
    expect(framesOf(tab, "user_message.created")).toHaveLength(1);
    expect((await storedRows(id)).map((r) => [r.role, r.client_message_id])).toEqual([
      ["user", "cap-1"],
      ["assistant", null],
    ]);
    // The room is not stuck: the next frame is answered.
    tab.send({ type: "ping" });
    await tab.until((f) => f.type === "pong");
    expect(tab.closed()).toBeUndefined();
  });
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

describe("FlagHub evicted mid-session", () => {
  const hub = () => flagHub(workerEnv);
  const change = (e: { event: string; id?: string; data: unknown }) => [
    e.event,
    e.id,
    (e.data as FlagChangeEvent).version,
  ];
  const closeAll = (...streams: EventReader[]) => Promise.all(streams.map((s) => s.close()));

  // An open stream is a request in flight: evictDurableObject waits for it (and gives up after 30 s), so that
  // variant evicts once its client has gone; evict() cuts the stream, as a deploy or crash would.
  it.each([
    ["evictDurableObject, after the stream's client left", false],
    ["evict() (ctx.abort), cutting the stream", true],
  ] as const)(
    "evicted between writes (%s): the version never goes back, a reconnecting stream gets every change after its Last-Event-ID once, KV gets the newest snapshot",
    async (_how, cutsStream) => {
      const key = uniqueFlagKey("evicted");
      await createFlag(admin.access, { key, enabled: false });
      const v0 = await ruleSetVersion();
      const stream = await openStream(viewer.access);
      try {
        expect(await stream.next()).toEqual({ event: "hello", id: String(v0), data: { version: v0 } });
        await toggleFlag(admin.access, key, true);
        expect(change(await stream.next())).toEqual(["change", String(v0 + 1), v0 + 1]);

        if (cutsStream) {
          await resetByEvict(hub());
          await expect(stream.next()).rejects.toThrow(/the stream ended/);
        } else {
          await stream.close();
          await evictDurableObject(hub());
        }
        expect(await hub().publishedVersion()).toBe(v0 + 1);

        await toggleFlag(admin.access, key, false);
        await toggleFlag(admin.access, key, true);
        expect(await hub().publishedVersion()).toBe(v0 + 3);
        const kv = await kvState();
        expect([kv.version, kv.snapshot?.version]).toEqual([v0 + 3, v0 + 3]);
      } finally {
        await stream.close();
      }

      const resumed = await openStream(viewer.access, { "last-event-id": String(v0 + 1) });
      try {
        expect(change(await resumed.next())).toEqual(["change", String(v0 + 2), v0 + 2]);
        expect(change(await resumed.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
        // The next event is the next write's: nothing was sent twice.
        await toggleFlag(admin.access, key, false);
        expect(change(await resumed.next())).toEqual(["change", String(v0 + 4), v0 + 4]);
      } finally {
        await resumed.close();
      }
    },
    EVICTION_TEST_MS,
  );

  it("announces a write whose publish a newer write's overtook: kept for replay in version order, sent live once without moving Last-Event-ID back, while KV keeps the newer snapshot", async () => {
    const key = uniqueFlagKey("crossing");
    await createFlag(admin.access, { key, enabled: false });
    const v0 = await ruleSetVersion();
    const live = await openStream(viewer.access);
    try {
      expect((await live.next()).id).toBe(String(v0));
      // The first write's hand-off to the hub is held until the second write has been published.
      const reached = deferred<Snapshot>();
      const release = deferred<void>();
      const holding = {
        idFromName: (name: string) => workerEnv.FLAG_HUB.idFromName(name),
        get: () => ({
          publish: async (snapshot: Snapshot, event?: FlagChangeEvent) => {
            reached.resolve(snapshot);
            await release.promise;
            return hub().publish(snapshot, event);
          },
        }),
      };
      const first = call("POST", flagPath(key, "/toggle"), {
        token: admin.access,
        json: { enabled: true },
        overrides: { FLAG_HUB: holding },
      });
      expect((await reached.promise).version).toBe(v0 + 1);
      await toggleFlag(admin.access, key, false);
      expect(change(await live.next())).toEqual(["change", String(v0 + 2), v0 + 2]);

      release.resolve();
      expect((await first).status).toBe(200);
      const late = await live.next();
      expect(late).toEqual({
        event: "change",
        data: { version: v0 + 1, at: expect.any(String), changes: [{ subject: "flag", key, action: "toggled" }] },
      });
      expect(await hub().publishedVersion()).toBe(v0 + 2);
      const kv = await kvState();
      expect([kv.version, kv.snapshot?.version]).toEqual([v0 + 2, v0 + 2]);
      expect(kv.snapshot?.flags.find((f) => f.key === key)?.enabled).toBe(false);

      // A client that saw v0 reconnects: both changes, in version order, once each.
      const replay = await openStream(viewer.access, { "last-event-id": String(v0) });
      try {
        expect(change(await replay.next())).toEqual(["change", String(v0 + 1), v0 + 1]);
        expect(change(await replay.next())).toEqual(["change", String(v0 + 2), v0 + 2]);
        await toggleFlag(admin.access, key, true);
        expect(change(await replay.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
        expect(change(await live.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
      } finally {
        await replay.close();
      }
    } finally {
      await live.close();
    }
  });

  it("announces a change whose version reached the hub without it (a call an eviction cut off, then retried), once", async () => {
    const key = uniqueFlagKey("retried");
    await createFlag(admin.access, { key, enabled: false });
    const v0 = await ruleSetVersion();
    const live = await openStream(viewer.access);
    try {
      expect((await live.next()).id).toBe(String(v0));
      // The first call is cut off after the hub stored the snapshot's version, before the change: as ctx.abort
      // would, it rejects, and the writer retries the whole publish.
      const calls: (FlagChangeEvent | undefined)[] = [];
      const cutOnce = {
        idFromName: (name: string) => workerEnv.FLAG_HUB.idFromName(name),
        get: () => ({
          publish: async (snapshot: Snapshot, event?: FlagChangeEvent) => {
            calls.push(event);
            if (calls.length > 1) return hub().publish(snapshot, event);
            await hub().publish(snapshot);
            throw new Error("evicted");
          },
        }),
      };
      const toggled = await call("POST", flagPath(key, "/toggle"), {
        token: admin.access,
        json: { enabled: true },
        overrides: { FLAG_HUB: cutOnce },
      });
      expect(toggled.status).toBe(200);
      expect(calls).toHaveLength(2);
      expect(change(await live.next())).toEqual(["change", String(v0 + 1), v0 + 1]);

      // A third hand-off of the same change (another retry) is not announced again.
      const snapshot = (await kvState()).snapshot as Snapshot;
      expect(await hub().publish(snapshot, calls[1])).toBe(false);
      await toggleFlag(admin.access, key, false);
      expect(change(await live.next())).toEqual(["change", String(v0 + 2), v0 + 2]);

      const replay = await openStream(viewer.access, { "last-event-id": String(v0) });
      try {
        expect(change(await replay.next())).toEqual(["change", String(v0 + 1), v0 + 1]);
        expect(change(await replay.next())).toEqual(["change", String(v0 + 2), v0 + 2]);
      } finally {
        await replay.close();
      }
    } finally {
      await closeAll(live);
    }
  });

  it("sends reset, not a replay with a hole, when a version after Last-Event-ID has no change kept", async () => {
    const key = uniqueFlagKey("hole");
    await createFlag(admin.access, { key, enabled: false });
    const v0 = await ruleSetVersion();
    await toggleFlag(admin.access, key, true);
    // A write whose hand-off was lost (the reconcile cron republishes the snapshot, never the change), then another.
    await db.execute(sql`update flag_state set version = version + 1 where id = 1`);
    await toggleFlag(admin.access, key, false);
    expect(await hub().publishedVersion()).toBe(v0 + 3);

    const behind = await openStream(viewer.access, { "last-event-id": String(v0) });
    const past = await openStream(viewer.access, { "last-event-id": String(v0 + 2) });
    try {
      expect(await behind.next()).toMatchObject({ event: "reset", id: String(v0 + 3), data: { version: v0 + 3 } });
      // After the hole everything is kept: replayed.
      expect(change(await past.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
    } finally {
      await closeAll(behind, past);
    }
  });
});
