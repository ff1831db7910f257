// POST /api/admin/chaos/evict: off by default (404), admins only, and with CHAOS_EVICTION=on it resets a live
// chat room: the open socket closes, and a reconnect gets the stored thread back, each turn once.
import { beforeAll, describe, expect, it } from "vitest";
import { call, openSocket } from "./harness.ts";
import { auditFor, signedInUser, type TestUser } from "./identity-helpers.ts";

const on = { overrides: { CHAOS_EVICTION: "on" } };
let admin: TestUser;
let viewer: TestUser;
let alice: TestUser;

beforeAll(async () => {
  [admin, viewer, alice] = await Promise.all([signedInUser("admin"), signedInUser("viewer"), signedInUser()]);
});

describe("POST /api/admin/chaos/evict", () => {
  it("answers 404 while CHAOS_EVICTION is off (the default)", async () => {
    const res = await call("POST", "/api/admin/chaos/evict", { token: admin.access, json: { object: "flag-hub" } });
    expect(res.status).toBe(404);
    expect(res.body.detail).toMatch(/CHAOS_EVICTION=on/);
  });

  it("is for admins: a viewer gets 403", async () => {
    const res = await call("POST", "/api/admin/chaos/evict", {
      ...on,
      token: viewer.access,
      json: { object: "flag-hub" },
    });
    expect(res.status).toBe(403);
  });

  it("asks for the name of a chat room or voice session", async () => {
    const res = await call("POST", "/api/admin/chaos/evict", {
      ...on,
      token: admin.access,
      json: { object: "chat-room" },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ field: "body.name", message: "is required for chat-room" }]);
  });

  it("resets a chat room mid-session: its socket closes, a reconnect sees each stored turn once", async () => {
    const id = (await call("POST", "/api/conversations", { token: alice.access, json: {} })).body.id as string;
    const path = `/api/realtime/ws?conversation_id=${id}`;
    const protocols = ["voiceassist.chat.v1", `bearer.${alice.access}`];
    const first = await openSocket(path, { protocols });
    await first.until((f) => f.type === "history");
    first.send({ type: "message", content: "What is the potassium threshold?", client_message_id: "evict-1" });
    await first.until((f) => f.type === "message.done", 30_000);

    const res = await call("POST", "/api/admin/chaos/evict", {
      ...on,
      token: admin.access,
      json: { object: "chat-room", name: id },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ object: "chat-room", name: id, evicted: true });
    expect(await first.closing()).toBeDefined();
    expect((await auditFor(id))[0]).toMatchObject({ action: "admin.chaos.evicted", outcome: "success" });

    const again = await openSocket(path, { protocols });
    const history = await again.until((f) => f.type === "history");
    expect(history.messages.map((m: { role: string }) => m.role)).toEqual(["user", "assistant"]);
    // The same message sent again after the reconnect is the stored one, not a second turn.
    again.send({ type: "message", content: "What is the potassium threshold?", client_message_id: "evict-1" });
    await again.until((f) => f.type === "message.done" || f.type === "error", 30_000);
    const thread = await call("GET", `/api/conversations/${id}/messages`, { token: alice.access });
    expect(thread.body.items.filter((m: { role: string }) => m.role === "user")).toHaveLength(1);
    again.socket?.close(1000);
  });
});
