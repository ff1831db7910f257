import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { setLogLevel } from "../../src/observability/log.ts";
import { SOCKET_RECHECK_MS, socketRecheck } from "../../src/sockets/credential.ts";
import { call, openSocket, type SocketMessage } from "./harness.ts";
import { freshIp, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";
import { capturedLogs } from "./voice-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `drossmere${run.replace(/\d/g, "")}`;

let admin: TestUser;
let alice: TestUser;
let bob: TestUser;

type Frame = SocketMessage;

const connect = (path: string, protocols: string[] = []) => openSocket(path, { protocols });

const conversationOf = async (owner: TestUser) =>
  (await call("POST", "/api/conversations", { token: owner.access, json: {} })).body.id as string;

beforeAll(async () => {
  admin = await signedInUser("admin");
  alice = await signedInUser();
  bob = await signedInUser();
  await addIndexedDocument(admin.access, {
    title: "Hyperkalaemia",
    sourceType: `chat-ws-${run}`,
    text: `Hyperkalaemia ${WORD} above 6.5 mmol/L needs calcium gluconate 10 ml of 10% intravenously. Then give insulin with glucose.`,
  });
});

describe("GET /api/realtime/ws: chat over a WebSocket", () => {
  it("authenticates with a bearer subprotocol, sends history, and streams a turn to every socket", async () => {
    const id = await conversationOf(alice);
    const path = `/api/realtime/ws?conversation_id=${id}`;
    const first = await connect(path, ["voiceassist.chat.v1", `bearer.${alice.access}`]);
    expect(first.res.status).toBe(101);
    expect(first.res.headers.get("sec-websocket-protocol")).toBe("voiceassist.chat.v1");
    expect(await first.until((f) => f.type === "connected")).toMatchObject({ conversation_id: id, user_id: alice.id });
    expect(await first.until((f) => f.type === "history")).toMatchObject({ messages: [] });
    const second = await connect(path, ["voiceassist.chat.v1", `bearer.${alice.access}`]);
    await second.until((f) => f.type === "history");

    first.socket!.send(JSON.stringify({ type: "ping" }));
    await first.until((f) => f.type === "pong");
    first.socket!.send(
      JSON.stringify({ type: "message", content: `hyperkalaemia ${WORD} treatment`, client_message_id: "ws-1" }),
    );
    for (const tab of [first, second]) {
      const created = await tab.until((f) => f.type === "user_message.created");
      expect(created.message).toMatchObject({ role: "user", content: `hyperkalaemia ${WORD} treatment` });
      const done = await tab.until((f) => f.type === "message.done");
      expect(done.message.role).toBe("assistant");
      expect(done.citations[0]).toMatchObject({ index: 1, title: "Hyperkalaemia" });
      const chunks = tab.messages
        .filter((f) => f.type === "chunk")
        .map((f) => f.text)
        .join("");
      expect(chunks).toBe(done.message.content);
    }
    // A reconnect gets the stored turn as history.
    const later = await connect(path, [`bearer.${alice.access}`]);
    const history = await later.until((f) => f.type === "history");
    expect(history.messages.map((m: Frame) => m.role)).toEqual(["user", "assistant"]);
  });

  it("connects with a single-use ticket instead of a token", async () => {
    const id = await conversationOf(alice);
    const minted = await call("POST", "/api/realtime/tickets", { token: alice.access, json: { conversation_id: id } });
    expect(minted.status).toBe(201);
    const ok = await connect(minted.body.url);
    expect(ok.res.status).toBe(101);
    await ok.until((f) => f.type === "connected");
    const reused = (await connect(minted.body.url)).res;
    expect(reused.status).toBe(401);
    // A refused ticket is a problem like every other error (the fuzzer found it as plain text).
    expect(reused.headers.get("content-type")).toBe("application/problem+json");
    expect(await reused.json()).toMatchObject({ code: "UNAUTHORIZED", requestId: reused.headers.get("x-request-id") });
  });

  it("answers bad messages with an error and keeps the connection", async () => {
    const id = await conversationOf(alice);
    const { socket, until, messages } = await connect(`/api/realtime/ws?conversation_id=${id}`, [
      `bearer.${alice.access}`,
    ]);
    await until((f) => f.type === "history");
    socket!.send("{not json");
    expect(await until((f) => f.type === "error")).toMatchObject({ code: "MALFORMED_JSON" });
    socket!.send(JSON.stringify({ type: "message", content: "" }));
    await until((f) => f.type === "error" && f.code === "VALIDATION_FAILED");
    socket!.send(JSON.stringify({ type: "shout" }));
    await until(
      (f) =>
        f.type === "error" && f.code === "VALIDATION_FAILED" && messages.filter((x) => x.type === "error").length === 3,
    );
    socket!.send(JSON.stringify({ type: "ping" }));
    await until((f) => f.type === "pong");
  });

  it("refuses other users, missing credentials and non-upgrade requests", async () => {
    const id = await conversationOf(alice);
    const path = `/api/realtime/ws?conversation_id=${id}`;
    expect((await connect(path, [`bearer.${bob.access}`])).res.status).toBe(404);
    expect((await connect(path)).res.status).toBe(401);
    expect((await connect(path, ["bearer.not-a-token"])).res.status).toBe(401);
    expect((await call("GET", path, { token: alice.access })).status).toBe(400);
    const theirs = await call("POST", "/api/realtime/tickets", { token: bob.access, json: { conversation_id: id } });
    expect(theirs.status).toBe(404);
  });

  describe("error messages", () => {
    afterEach(() => {
      vi.restoreAllMocks();
      setLogLevel("error");
    });

    const socketOf = async (owner: TestUser) => {
      const id = await conversationOf(owner);
      const open = await connect(`/api/realtime/ws?conversation_id=${id}`, [`bearer.${owner.access}`]);
      await open.until((f) => f.type === "history");
      return { id, ...open };
    };
    const errorsIn = (messages: Frame[]) => messages.filter((f) => f.type === "error");

    it("refuses a NUL in any field as VALIDATION_FAILED naming it, and stores nothing", async () => {
      const { id, socket, messages, until } = await socketOf(alice);
      socket!.send(JSON.stringify({ type: "message", content: "potassium\u0000 level", client_message_id: "nul-1" }));
      socket!.send(JSON.stringify({ type: "message", content: "potassium level", client_message_id: "nul\u0000-2" }));
      socket!.send(JSON.stringify({ type: "ping", "odd\u0000key": 1 }));
      await until(() => errorsIn(messages).length === 3);
      const [content, clientId, key] = errorsIn(messages);
      expect(content).toMatchObject({
        code: "VALIDATION_FAILED",
        errors: [{ field: "content", message: expect.stringContaining("U+0000") }],
      });
      expect(content?.message).toMatch(/^content .*U\+0000/);
      expect(clientId).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ field: "client_message_id" }] });
      expect(key).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ field: "frame" }] });
      socket!.send(JSON.stringify({ type: "ping" }));
      await until((f) => f.type === "pong");
      expect(messages.some((f) => f.type === "user_message.created")).toBe(false);
      const stored = await call("GET", `/api/conversations/${id}/messages`, { token: alice.access });
      expect(stored.body.items).toEqual([]);
    });

    it("answers JSON that is not a frame, wrong types and deep nesting with VALIDATION_FAILED", async () => {
      const { socket, messages, until } = await socketOf(alice);
      const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
      const bad = [
        "null",
        "[]",
        "42",
        '"ping"',
        '{"type":null}',
        '{"type":"message","content":42,"client_message_id":"x"}',
        '{"type":"message","content":"hi","client_message_id":["x"]}',
        `{"type":"ping","extra":${deep}}`,
      ];
      for (const frame of bad) socket!.send(frame);
      await until(() => errorsIn(messages).length === bad.length);
      expect(errorsIn(messages).map((f) => f.code)).toEqual(bad.map(() => "VALIDATION_FAILED"));
      expect(errorsIn(messages).at(-1)?.errors[0].field).toMatch(/^extra(\.0)+$/);
      expect(messages.some((f) => f.type === "pong")).toBe(false);
    });

    it("gives every error frame a requestId that its server log line carries", async () => {
      const { id, socket, messages, until } = await socketOf(alice);
      const deleted = await call("DELETE", `/api/conversations/${id}`, { token: alice.access });
      expect(deleted.status).toBe(204);
      const logs = capturedLogs();
      setLogLevel("warn");
      socket!.send("{not json");
      socket!.send(JSON.stringify({ type: "message", content: `private ${WORD}`, client_message_id: "gone-1" }));
      await until(() => errorsIn(messages).length === 2);
      const [malformed, failed] = errorsIn(messages);
      expect(malformed).toMatchObject({ code: "MALFORMED_JSON", requestId: expect.any(String) });
      expect(failed).toMatchObject({ code: "NOT_FOUND", requestId: expect.any(String) });
      expect(failed?.requestId).not.toBe(malformed?.requestId);
      for (const frame of [malformed, failed]) {
        const line = logs.lines.find((l) => l.request_id === frame?.requestId);
        expect(line).toMatchObject({ level: "warn", code: frame?.code, user_id: alice.id });
      }
      expect(logs.raw.join("\n")).not.toContain(WORD);
      // The room is not stuck after a failed turn: the next frame is answered.
      socket!.send(JSON.stringify({ type: "ping" }));
      await until((f) => f.type === "pong");
    });
  });
});

describe("GET /api/realtime/ws: a socket ends when its credential does", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    setLogLevel("error");
  });

  const room = (conversationId: string) => env.CHAT_ROOM.get(env.CHAT_ROOM.idFromName(conversationId));
  /** The room's re-check, as its alarm runs it every SOCKET_RECHECK_MS; false when none was armed. */
  const recheck = (conversationId: string) => runDurableObjectAlarm(room(conversationId));
  const opened = async (conversationId: string, protocols: string[]) => {
    const socket = await connect(`/api/realtime/ws?conversation_id=${conversationId}`, protocols);
    await socket.until((f) => f.type === "history");
    return socket;
  };
  const ticketSocket = async (owner: TestUser, conversationId: string) => {
    const minted = await call("POST", "/api/realtime/tickets", {
      token: owner.access,
      json: { conversation_id: conversationId },
    });
    const socket = await connect(minted.body.url);
    await socket.until((f) => f.type === "history");
    return socket;
  };
  /** Another session of the same user. */
  const secondSession = async (user: TestUser) =>
    (await call("POST", "/api/auth/login", { json: { email: user.email, password: user.password }, ip: freshIp() }))
      .body.access_token as string;
  const endedBy = async (socket: Awaited<ReturnType<typeof opened>>, reason: RegExp) => {
    const error = await socket.until((f) => f.type === "error");
    expect(error).toMatchObject({ code: "UNAUTHORIZED", message: expect.stringMatching(reason) });
    expect((await socket.closing())?.code).toBe(1008);
  };
  const stillOpen = async (socket: Awaited<ReturnType<typeof opened>>) => {
    socket.socket!.send(JSON.stringify({ type: "ping" }));
    await socket.until((f) => f.type === "pong");
    expect(socket.messages.some((f) => f.type === "error")).toBe(false);
    expect(socket.closed!()).toBeUndefined();
  };

  it("checks every SOCKET_RECHECK_MS (at most 30 s): a logged-out session's socket ends, another session's stays", async () => {
    expect(SOCKET_RECHECK_MS).toBeLessThanOrEqual(30_000);
    const carol = await signedInUser();
    const id = await conversationOf(carol);
    const leaving = await opened(id, [`bearer.${carol.access}`]);
    const staying = await opened(id, [`bearer.${await secondSession(carol)}`]);
    expect(await recheck(id)).toBe(true);
    await stillOpen(leaving);

    expect((await call("POST", "/api/auth/logout", { token: carol.access })).status).toBe(204);
    expect(await recheck(id)).toBe(true);
    await endedBy(leaving, /session has ended/);
    await stillOpen(staying);
    expect(await recheck(id)).toBe(true); // re-armed while a socket is open
  });

  it("ends a socket whose API key is revoked", async () => {
    const dave = await signedInUser();
    const id = await conversationOf(dave);
    const key = await call("POST", "/api/users/me/api-keys", { token: dave.access, json: { name: "chat bot" } });
    const socket = await opened(id, [`bearer.${key.body.key}`]);
    const revoked = await call("DELETE", `/api/users/me/api-keys/${key.body.id}`, { token: dave.access });
    expect(revoked.status).toBe(204);
    expect(await recheck(id)).toBe(true);
    await endedBy(socket, /API key/);
  });

  it("ends a ticket's socket when the session that minted it ends, and every socket of a deactivated user", async () => {
    const erin = await signedInUser();
    const other = await secondSession(erin);
    const id = await conversationOf(erin);
    const minted = await ticketSocket(erin, id);
    const byToken = await opened(id, [`bearer.${other}`]);
    expect((await call("POST", "/api/auth/logout", { token: erin.access })).status).toBe(204);
    expect(await recheck(id)).toBe(true);
    await endedBy(minted, /session has ended/);
    await stillOpen(byToken);

    const deactivated = await call("POST", `/api/admin/users/${erin.id}/deactivate`, { token: admin.access });
    expect(deactivated.status).toBe(200);
    expect(await recheck(id)).toBe(true);
    await endedBy(byToken, /deactivated/);
  });

  it("ends a socket when its access token expires; a ticket's socket lives on with its session", async () => {
    const frank = await signedInUser();
    const id = await conversationOf(frank);
    const byToken = await opened(id, [`bearer.${frank.access}`]);
    const byTicket = await ticketSocket(frank, id);
    // As if the next re-check ran after the access token's expiry (15 minutes by default).
    vi.spyOn(socketRecheck, "now").mockReturnValue(Date.now() + 16 * 60_000);
    expect(await recheck(id)).toBe(true);
    await endedBy(byToken, /access token has expired/);
    await stillOpen(byTicket);
  });

  it("keeps a socket after a role change: it acts only as its user", async () => {
    const grace = await signedInUser();
    const id = await conversationOf(grace);
    const socket = await opened(id, [`bearer.${grace.access}`]);
    const promoted = await call("PATCH", `/api/admin/users/${grace.id}/role`, {
      token: admin.access,
      json: { role: "viewer" },
    });
    expect(promoted.status).toBe(200);
    expect(await recheck(id)).toBe(true);
    await stillOpen(socket);
  });

  it("keeps the socket, and says so in the log, when the database does not answer", async () => {
    const heidi = await signedInUser();
    const id = await conversationOf(heidi);
    const socket = await opened(id, [`bearer.${heidi.access}`]);
    expect((await call("POST", "/api/auth/logout", { token: heidi.access })).status).toBe(204);
    const down = { execute: () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432")) };
    vi.spyOn(socketRecheck, "database").mockReturnValue(down as unknown as Database);
    const logs = capturedLogs();
    setLogLevel("warn");
    expect(await recheck(id)).toBe(true);
    await stillOpen(socket);
    expect(logs.lines).toContainEqual(
      expect.objectContaining({ level: "warn", message: expect.stringMatching(/database did not answer/) }),
    );
    vi.mocked(socketRecheck.database).mockRestore();
    expect(await recheck(id)).toBe(true); // still armed: once the database answers, the socket ends
    await endedBy(socket, /session has ended/);
  });
});
