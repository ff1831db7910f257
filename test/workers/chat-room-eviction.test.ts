// Issue #15: a chat room evicted mid-session loses nothing. It is evicted with the real test helper
// (evictDurableObject, sockets hibernated or closed) and through its own evict() (ctx.abort, what the
// durable-object-eviction chaos experiment calls); the client goes on or reconnects, and every stored turn is
// there exactly once. evictDurableObject first lets requests in flight drain: a socket's upgrade request holds it
// about 15 s here (so those tests are slow), and a turn that does not end makes it give up after 30 s.
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { queryRows } from "../../src/db/client.ts";
import type { Env } from "../../src/env.ts";
import type { ChatRoom } from "../../workers/chat-room.ts";
import { withOpenAi } from "./answer-helpers.ts";
import { evictions, resetByEvict, storedRows, thread } from "./eviction-helpers.ts";
import { call, openSocket, type SocketMessage } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `vellorine${run.replace(/\d/g, "")}`;
// An eviction through evictDurableObject waits up to 15 s for what is in flight.
const EVICTION_TEST_MS = 60_000;

let admin: TestUser;
let alice: TestUser;

beforeAll(async () => {
  [admin, alice] = await Promise.all([signedInUser("admin"), signedInUser()]);
  await addIndexedDocument(admin.access, {
    title: "Meningitis",
    sourceType: `eviction-${run}`,
    text: `Bacterial meningitis ${WORD} is treated with ceftriaxone 2 g intravenously at once. Give dexamethasone before or with the first dose.`,
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

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
