import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { messages } from "../../src/db/schema/conversations.ts";
import { call, OPERATOR_TOKEN } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";

// POST/DELETE /api/conversations/{id}/messages/{message_id}/feedback: satisfaction with an answer, stored and counted.
// Threads are written straight to the database: rating does not depend on how the answer was produced.

let alice: TestUser;
let bob: TestUser;
let viewer: TestUser;

// biome-ignore lint/suspicious/noExplicitAny: response bodies, checked by the assertions
type Json = Record<string, any>;

const rows = async (query: ReturnType<typeof sql>) => ((await db.execute(query)) as unknown as { rows: Json[] }).rows;

/** A conversation of `owner` with one answered turn: its question and answer ids. */
async function thread(owner: TestUser) {
  const created = await call("POST", "/api/conversations", { token: owner.access, json: { title: "Feedback" } });
  expect(created.status).toBe(201);
  const id: string = created.body.id;
  const [question] = await db
    .insert(messages)
    .values({ conversationId: id, turn: 1, role: "user", content: "adrenaline dose?", replyStatus: "answered" })
    .returning({ id: messages.id });
  const [answer] = await db
    .insert(messages)
    .values({ conversationId: id, turn: 1, role: "assistant", content: "0.5 mg IM.", replyTo: question?.id })
    .returning({ id: messages.id });
  return { id, question: question?.id as string, answer: answer?.id as string };
}

const path = (id: string, messageId: string) => `/api/conversations/${id}/messages/${messageId}/feedback`;
const rate = (user: TestUser, id: string, messageId: string, json: unknown) =>
  call("POST", path(id, messageId), { token: user.access, json });
const unrate = (user: TestUser, id: string, messageId: string) =>
  call("DELETE", path(id, messageId), { token: user.access });

/** A series of GET /metrics (catalog name and labels; exposed with the voiceassist_ prefix), 0 before its first sample. */
async function counter(series: string): Promise<number> {
  const res = await call("GET", "/metrics", { token: OPERATOR_TOKEN });
  expect(res.status).toBe(200);
  const exposed = `voiceassist_${series}`;
  const line = String(res.body)
    .split("\n")
    .find((l) => l.startsWith(`${exposed} `));
  return line ? Number(line.slice(exposed.length + 1)) : 0;
}

const feedbackRows = (messageId: string) =>
  rows(sql`select user_id, rating, comment from message_feedback where message_id = ${messageId}`);

beforeAll(async () => {
  alice = await signedInUser();
  bob = await signedInUser();
  viewer = await signedInUser("viewer");
});

describe("rating an answer", () => {
  it("stores a first rating (201), replaces it on a second one (200), lists it, and withdraws it (204)", async () => {
    const t = await thread(alice);
    const first = await rate(alice, t.id, t.answer, { rating: "down", comment: "  wrong dose  " });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ message_id: t.answer, rating: "down", comment: "wrong dose" });
    expect(first.body.created_at).toBe(first.body.updated_at);

    const again = await rate(alice, t.id, t.answer, { rating: "up" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ message_id: t.answer, rating: "up", comment: null });
    expect(again.body.created_at).toBe(first.body.created_at);
    expect(Date.parse(again.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(first.body.updated_at));
    expect(await feedbackRows(t.answer)).toEqual([{ user_id: alice.id, rating: "up", comment: null }]);

    const listed = await call("GET", `/api/conversations/${t.id}/messages`, { token: alice.access });
    expect(listed.status).toBe(200);
    const byId = new Map<string, Json>(listed.body.items.map((m: Json) => [m.id, m]));
    expect(byId.get(t.question)?.feedback).toBeNull();
    expect(byId.get(t.answer)?.feedback).toEqual(again.body);

    expect((await unrate(alice, t.id, t.answer)).status).toBe(204);
    expect(await feedbackRows(t.answer)).toEqual([]);
    const withdrawn = await unrate(alice, t.id, t.answer);
    expect(withdrawn.status).toBe(404);
    expect(withdrawn.body.code).toBe("NOT_FOUND");
    const relisted = await call("GET", `/api/conversations/${t.id}/messages`, { token: alice.access });
    expect(relisted.body.items.find((m: Json) => m.id === t.answer).feedback).toBeNull();
  });

  it("lets viewers rate answers in their own conversations, like users", async () => {
    const t = await thread(viewer);
    const res = await rate(viewer, t.id, t.answer, { rating: "up", comment: "clear" });
    expect(res.status).toBe(201);
    expect(await feedbackRows(t.answer)).toEqual([{ user_id: viewer.id, rating: "up", comment: "clear" }]);
    expect((await unrate(viewer, t.id, t.answer)).status).toBe(204);
  });

  it("answers 404 for another user's conversation, a question, an answer of another conversation and unknown ids", async () => {
    const t = await thread(alice);
    const other = await thread(alice);
    const unknown = crypto.randomUUID();
    const cases: [TestUser, string, string][] = [
      [bob, t.id, t.answer], // not bob's conversation
      [alice, t.id, t.question], // a question, not an answer
      [alice, t.id, other.answer], // an answer, of another conversation
      [alice, t.id, unknown],
      [alice, unknown, t.answer],
    ];
    for (const [user, id, messageId] of cases) {
      const posted = await rate(user, id, messageId, { rating: "up" });
      expect(posted.status, `POST ${id}/${messageId}`).toBe(404);
      expect(posted.headers.get("content-type")).toBe("application/problem+json");
      expect((await unrate(user, id, messageId)).status, `DELETE ${id}/${messageId}`).toBe(404);
    }
    // Bob cannot withdraw alice's rating either, and nothing was stored for him.
    expect((await rate(alice, t.id, t.answer, { rating: "up" })).status).toBe(201);
    expect((await unrate(bob, t.id, t.answer)).status).toBe(404);
    expect(await feedbackRows(t.answer)).toEqual([{ user_id: alice.id, rating: "up", comment: null }]);
    expect(await feedbackRows(t.question)).toEqual([]);
    expect(await feedbackRows(other.answer)).toEqual([]);
  });

  it("answers 401 without a token", async () => {
    const t = await thread(alice);
    expect((await call("POST", path(t.id, t.answer), { json: { rating: "up" } })).status).toBe(401);
    expect((await call("DELETE", path(t.id, t.answer))).status).toBe(401);
  });

  it.each<[string, unknown]>([
    ["an unknown rating", { rating: "meh" }],
    ["no rating", { comment: "fine" }],
    ["a null rating", { rating: null }],
    ["an empty comment", { rating: "up", comment: "" }],
    ["a blank comment", { rating: "down", comment: "   \n " }],
    ["a comment over 2000 characters", { rating: "down", comment: "x".repeat(2_001) }],
    ["a non-string comment", { rating: "down", comment: 5 }],
    ["an unknown field", { rating: "up", stars: 5 }],
    ["an array", [{ rating: "up" }]],
  ])("refuses %s with 422 and stores nothing", async (_case, json) => {
    const t = await thread(alice);
    const res = await rate(alice, t.id, t.answer, json);
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("VALIDATION_FAILED");
    expect(await feedbackRows(t.answer)).toEqual([]);
  });

  it("accepts a comment of exactly 2000 characters once trimmed", async () => {
    const t = await thread(alice);
    const comment = "y".repeat(2_000);
    const res = await rate(alice, t.id, t.answer, { rating: "down", comment: ` ${comment} ` });
    expect(res.status).toBe(201);
    expect(res.body.comment).toBe(comment);
  });

  it("counts every stored rating in answer_feedback_total{rating}, and nothing refused", async () => {
    const t = await thread(alice);
    const before = {
      up: await counter('answer_feedback_total{rating="up"}'),
      down: await counter('answer_feedback_total{rating="down"}'),
    };
    expect((await rate(alice, t.id, t.answer, { rating: "up" })).status).toBe(201);
    expect((await rate(alice, t.id, t.answer, { rating: "down", comment: "on reflection, no" })).status).toBe(200);
    expect((await rate(alice, t.id, t.answer, { rating: "down" })).status).toBe(200);
    expect((await rate(alice, t.id, t.answer, { rating: "sideways" })).status).toBe(422);
    expect((await rate(bob, t.id, t.answer, { rating: "up" })).status).toBe(404);
    expect((await rate(alice, t.id, t.question, { rating: "up" })).status).toBe(404);
    expect(await counter('answer_feedback_total{rating="up"}')).toBe(before.up + 1);
    expect(await counter('answer_feedback_total{rating="down"}')).toBe(before.down + 2);
  });

  it("declares the counter in the exposition", async () => {
    const res = await call("GET", "/metrics", { token: OPERATOR_TOKEN });
    expect(String(res.body)).toContain("# TYPE voiceassist_answer_feedback_total counter\n");
  });

  it("goes with the conversation: deleting it removes the ratings of its answers", async () => {
    const t = await thread(alice);
    expect((await rate(alice, t.id, t.answer, { rating: "up", comment: "kept?" })).status).toBe(201);
    expect(await feedbackRows(t.answer)).toHaveLength(1);
    expect((await call("DELETE", `/api/conversations/${t.id}`, { token: alice.access })).status).toBe(204);
    expect(await feedbackRows(t.answer)).toEqual([]);
  });
});
