import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { parseSse, upstreamRequests, withOpenAi } from "./answer-helpers.ts";
import { call, callRaw } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const SOURCE = `conversations-${run}`;
const WORD = `vellmorin${run.replace(/\d/g, "")}`;
const filters = { source_type: SOURCE };

let admin: TestUser;
let alice: TestUser;
let bob: TestUser;

// biome-ignore lint/suspicious/noExplicitAny: response bodies, checked by the assertions
type Json = Record<string, any>;

const create = async (owner: TestUser, json: Json = {}) => {
  const res = await call("POST", "/api/conversations", { token: owner.access, json });
  expect(res.status).toBe(201);
  return res.body as Json;
};

const send = (owner: TestUser, id: string, json: Json, overrides?: Record<string, unknown>) =>
  callRaw("POST", `/api/conversations/${id}/messages`, { token: owner.access, json: { filters, ...json }, overrides });

const rows = async (query: ReturnType<typeof sql>) => ((await db.execute(query)) as unknown as { rows: Json[] }).rows;

beforeAll(async () => {
  admin = await signedInUser("admin");
  alice = await signedInUser();
  bob = await signedInUser();
  await addIndexedDocument(admin.access, {
    title: "Anaphylaxis",
    sourceType: SOURCE,
    text: `Anaphylaxis ${WORD} is treated with intramuscular adrenaline 0.5 mg. Repeat after 5 minutes if there is no improvement.`,
  });
  await addIndexedDocument(admin.access, {
    title: "Asthma",
    sourceType: SOURCE,
    text: `Acute asthma ${WORD} is treated with salbutamol by spacer or nebuliser. Give oral prednisolone 40 mg.`,
  });
});

describe("conversations: create, read, update, delete", () => {
  it("creates, lists with title search and pagination, renames, files, archives and deletes", async () => {
    const tag = `clinic-${run}`;
    const first = await create(alice, { title: `Ward round ${tag}` });
    const second = await create(alice, { title: `Night shift ${tag}`, folder: "nights" });
    expect(first).toMatchObject({ title: `Ward round ${tag}`, folder: null, archived: false });

    const found = await call("GET", `/api/conversations?q=${tag}&page_size=1`, { token: alice.access });
    expect(found.body).toMatchObject({ total: 2, page: 1, page_size: 1 });
    expect(found.body.items).toHaveLength(1);
    const page2 = await call("GET", `/api/conversations?q=${tag}&page_size=1&page=2`, { token: alice.access });
    expect(page2.body.items[0].id).not.toBe(found.body.items[0].id);
    const inFolder = await call("GET", `/api/conversations?q=${tag}&folder=nights`, { token: alice.access });
    expect(inFolder.body.items.map((c: Json) => c.id)).toEqual([second.id]);

    const patched = await call("PATCH", `/api/conversations/${first.id}`, {
      token: alice.access,
      json: { title: `Renamed ${tag}`, archived: true, folder: "done" },
    });
    expect(patched.body).toMatchObject({ title: `Renamed ${tag}`, archived: true, folder: "done" });
    const archived = await call("GET", `/api/conversations?q=${tag}&archived=true`, { token: alice.access });
    expect(archived.body.items.map((c: Json) => c.id)).toEqual([first.id]);

    expect((await call("PATCH", `/api/conversations/${first.id}`, { token: alice.access, json: {} })).status).toBe(422);
    expect((await call("DELETE", `/api/conversations/${first.id}`, { token: alice.access })).status).toBe(204);
    expect((await call("GET", `/api/conversations/${first.id}`, { token: alice.access })).status).toBe(404);
  });

  it("never shows another user's conversation: every route answers 404, and 401 without a token", async () => {
    const theirs = await create(alice, { title: "private" });
    const sent = await send(alice, theirs.id, { content: `anaphylaxis ${WORD} dose`, client_message_id: "p-1" });
    const { user_message: question } = await sent.json<Json>();
    const id = theirs.id;
    const mid = question.id;
    const routes: [string, string, Json?][] = [
      ["GET", `/api/conversations/${id}`],
      ["PATCH", `/api/conversations/${id}`, { title: "mine now" }],
      ["DELETE", `/api/conversations/${id}`],
      ["GET", `/api/conversations/${id}/messages`],
      ["POST", `/api/conversations/${id}/messages`, { content: "hello", client_message_id: "b-1" }],
      ["PATCH", `/api/conversations/${id}/messages/${mid}`, { content: "edited", client_message_id: "b-2" }],
      ["POST", `/api/conversations/${id}/messages/${mid}/regenerate`, {}],
      ["GET", `/api/conversations/${id}/messages/${mid}/versions`],
      ["GET", `/api/conversations/${id}/export`],
    ];
    for (const [method, path, json] of routes) {
      const asBob = await call(method, path, { token: bob.access, ...(json ? { json } : {}) });
      expect(asBob.status, `${method} ${path}`).toBe(404);
      const anonymous = await call(method, path, json ? { json } : {});
      expect(anonymous.status, `${method} ${path} anonymous`).toBe(401);
    }
    const list = await call("GET", "/api/conversations?q=private", { token: bob.access });
    expect(list.body.items.map((c: Json) => c.id)).not.toContain(id);
    // Still intact for its owner.
    const mine = await call("GET", `/api/conversations/${id}/messages`, { token: alice.access });
    expect(mine.body.total).toBe(2);
  });
});

describe("conversations: sending messages", () => {
  it("stores the question and a grounded answer with citations, model, tokens, cost and latency", async () => {
    const conversation = await create(alice);
    const res = await send(alice, conversation.id, {
      content: `What dose of adrenaline for anaphylaxis ${WORD}?`,
      client_message_id: "m-1",
    });
    expect(res.status).toBe(201);
    const body = await res.json<Json>();
    expect(body.replayed).toBe(false);
    expect(body.user_message).toMatchObject({ role: "user", turn: 1, version: 1, client_message_id: "m-1" });
    expect(body.assistant_message).toMatchObject({
      role: "assistant",
      turn: 1,
      reply_to: body.user_message.id,
      model: "local-extractive-v1",
      provider: "local",
    });
    expect(body.assistant_message.citations[0]).toMatchObject({ index: 1, title: "Anaphylaxis" });
    expect(body.assistant_message.latency_ms).toBeGreaterThanOrEqual(0);
    expect(body.assistant_message.usage.completion_tokens).toBeGreaterThan(0);
    // The first question names the conversation.
    const named = await call("GET", `/api/conversations/${conversation.id}`, { token: alice.access });
    expect(named.body.title).toBe(`What dose of adrenaline for anaphylaxis ${WORD}?`);
    // The local composer is free: its calls are counted in metrics, not written as usage rows (docs/costs.md).
    expect(named.body.usage).toMatchObject({ calls: 0, cost_usd: 0 });
    const mine = await call("GET", "/api/users/me/usage", { token: alice.access });
    expect(mine.status).toBe(200);
    expect((await call("GET", "/api/users/me/usage?since=yesterday", { token: alice.access })).status).toBe(422);
  });

  it("returns the first result for a retried client_message_id, without storing anything new", async () => {
    const conversation = await create(alice);
    const json = { content: `asthma ${WORD} treatment`, client_message_id: "retry-1" };
    const first = await (await send(alice, conversation.id, json)).json<Json>();
    const again = await send(alice, conversation.id, json);
    expect(again.status).toBe(200);
    const replayed = await again.json<Json>();
    expect(replayed.replayed).toBe(true);
    expect(replayed.assistant_message.id).toBe(first.assistant_message.id);
    expect(replayed.answer.content).toBe(first.answer.content);
    const streamed = parseSse(
      await (
        await callRaw("POST", `/api/conversations/${conversation.id}/messages`, {
          token: alice.access,
          json: { ...json, stream: true },
        })
      ).text(),
    );
    expect(streamed.at(-1)?.data).toMatchObject({ replayed: true, content: first.answer.content });
    const stored = await rows(sql`select role from messages where conversation_id = ${conversation.id}`);
    expect(stored).toHaveLength(2);
  });

  it("never duplicates when the same send races itself", async () => {
    const conversation = await create(alice);
    const json = { content: `anaphylaxis ${WORD} repeat dose`, client_message_id: "race-1" };
    const responses = await Promise.all(Array.from({ length: 5 }, () => send(alice, conversation.id, json)));
    const bodies = await Promise.all(responses.map((r) => r.json<Json>()));
    expect(responses.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(bodies.map((b) => b.assistant_message.id)).size).toBe(1);
    const stored = await rows(sql`select role from messages where conversation_id = ${conversation.id}`);
    expect(stored.map((r) => r.role).sort()).toEqual(["assistant", "user"]);
  });

  it("keeps the question when the model fails, and a retry with the same id answers it", async () => {
    const conversation = await create(alice);
    const key = crypto.randomUUID();
    const json = { content: `asthma ${WORD}\n!fault status=500 times=1 key=${key}`, client_message_id: "fail-1" };
    const overrides = withOpenAi({ CHAT_MAX_RETRIES: "0" });
    const failed = await send(alice, conversation.id, json, overrides);
    expect(failed.status).toBe(502);
    const retried = await send(alice, conversation.id, json, overrides);
    expect(retried.status).toBe(201);
    const body = await retried.json<Json>();
    expect(body.assistant_message.provider).toBe("openai");
    const stored = await rows(sql`select role from messages where conversation_id = ${conversation.id}`);
    expect(stored).toHaveLength(2);
  });

  it("puts earlier turns in the prompt as history, before the question", async () => {
    const conversation = await create(alice);
    await send(alice, conversation.id, { content: `anaphylaxis ${WORD} first dose`, client_message_id: "h-1" });
    const tag = `history-${crypto.randomUUID()}`;
    await send(
      alice,
      conversation.id,
      { content: `${tag} and for asthma ${WORD}?`, client_message_id: "h-2" },
      withOpenAi(),
    );
    const [request] = await upstreamRequests(tag);
    const messages = request?.body.messages as { role: string; content: string }[];
    expect(messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user"]);
    expect(messages[1]?.content).toContain("first dose");
    expect(messages[3]?.content).toContain(tag);
  });

  it("leaves a refused question out of later prompts (PHI_MODE=block)", async () => {
    const conversation = await create(alice);
    const overrides = withOpenAi({ PHI_MODE: "block" });
    const refused = await send(
      alice,
      conversation.id,
      { content: `MRN: 12345678 asthma ${WORD}`, client_message_id: "b-1" },
      overrides,
    );
    expect(refused.status).toBe(422);
    const tag = `after-block-${crypto.randomUUID()}`;
    const next = await send(
      alice,
      conversation.id,
      { content: `${tag} asthma ${WORD}?`, client_message_id: "b-2" },
      overrides,
    );
    expect(next.status).toBe(201);
    const [request] = await upstreamRequests(tag);
    expect(JSON.stringify(request?.body.messages)).not.toContain("12345678");
  });

  it("streams a conversation turn: user_message, deltas, citations, done with the stored message", async () => {
    const conversation = await create(alice);
    const res = await callRaw("POST", `/api/conversations/${conversation.id}/messages`, {
      token: alice.access,
      json: { content: `salbutamol asthma ${WORD}`, client_message_id: "s-1", filters, stream: true },
    });
    const events = parseSse(await res.text());
    expect(events[0]?.event).toBe("user_message");
    expect(events.slice(-2).map((e) => e.event)).toEqual(["citations", "done"]);
    const done = events.at(-1)?.data as Json;
    expect(done.message).toMatchObject({ role: "assistant", content: done.content });
  });
});

describe("conversations: edit, regenerate, versions and export", () => {
  it("keeps every version when a question is edited or an answer regenerated", async () => {
    const conversation = await create(alice);
    const one = await (
      await send(alice, conversation.id, { content: `anaphylaxis ${WORD}`, client_message_id: "v-1" })
    ).json<Json>();
    await send(alice, conversation.id, { content: `asthma ${WORD}`, client_message_id: "v-2" });

    const regenerated = await callRaw(
      "POST",
      `/api/conversations/${conversation.id}/messages/${one.assistant_message.id}/regenerate`,
      { token: alice.access, json: { filters } },
    );
    expect(regenerated.status).toBe(201);
    const again = await regenerated.json<Json>();
    expect(again.assistant_message).toMatchObject({ turn: 1, version: 2, active: true });
    const answers = await call(
      "GET",
      `/api/conversations/${conversation.id}/messages/${one.assistant_message.id}/versions`,
      { token: alice.access },
    );
    expect(answers.body.items.map((m: Json) => [m.version, m.active])).toEqual([
      [1, false],
      [2, true],
    ]);

    const edited = await callRaw("PATCH", `/api/conversations/${conversation.id}/messages/${one.user_message.id}`, {
      token: alice.access,
      json: { content: `asthma ${WORD} in children`, client_message_id: "v-3", filters },
    });
    expect(edited.status).toBe(201);
    const edit = await edited.json<Json>();
    expect(edit.user_message).toMatchObject({ turn: 1, version: 2, content: `asthma ${WORD} in children` });
    const thread = await call("GET", `/api/conversations/${conversation.id}/messages`, { token: alice.access });
    expect(thread.body.items.map((m: Json) => [m.turn, m.role, m.version])).toEqual([
      [1, "user", 2],
      [1, "assistant", 3],
    ]);
    const questions = await call(
      "GET",
      `/api/conversations/${conversation.id}/messages/${one.user_message.id}/versions`,
      { token: alice.access },
    );
    expect(questions.body.items.map((m: Json) => m.content)).toEqual([
      `anaphylaxis ${WORD}`,
      `asthma ${WORD} in children`,
    ]);
    const all = await rows(sql`select count(*)::int as n from messages where conversation_id = ${conversation.id}`);
    expect(all[0]?.n).toBe(7);
  });

  it("exports the thread as Markdown with each answer's sources", async () => {
    const conversation = await create(alice, { title: "Export me" });
    await send(alice, conversation.id, { content: `anaphylaxis ${WORD} adrenaline`, client_message_id: "e-1" });
    const res = await callRaw("GET", `/api/conversations/${conversation.id}/export`, { token: alice.access });
    expect(res.headers.get("content-type")).toContain("text/markdown");
    const markdown = await res.text();
    expect(markdown).toMatch(/^# Export me\n/);
    expect(markdown).toContain("## You");
    expect(markdown).toContain("## Assistant");
    expect(markdown).toMatch(/Sources:\n\n1\. Anaphylaxis: "/);
  });
});
