// Message pact of the chat socket's server frames, as the reference client's parser (parseChatEvent) reads them.
// Writes contracts/voiceassist-web-client-voiceassist-chat-socket.json; messages.provider.test.ts verifies it.
import { MatchersV3, PactV4 } from "@pact-foundation/pact";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatEvent, parseChatEvent } from "../../clients/api-client/src/index.ts";
import { CHAT_PROVIDER, expectCommitted, isoTime, scratchDir, uuid } from "./support/pacts.ts";

const { boolean, eachLike, integer, nullValue, number, regex, string } = MatchersV3;
const CONSUMER = "voiceassist-web-client";
const FILE = `${CONSUMER}-${CHAT_PROVIDER}.json`;

let dir: string;
let pact: PactV4;
beforeAll(async () => {
  dir = await scratchDir();
  pact = new PactV4({ consumer: CONSUMER, provider: CHAT_PROVIDER, dir, logLevel: "warn" });
});
afterAll(() => expectCommitted(dir, FILE));

const citation = {
  index: integer(1),
  document_id: uuid("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
  title: string("Contract dosage guide"),
  chunk_id: string("7c9e6679-7425-40de-944b-e07fc1f90ae7:1:0"),
  snippet: string("Adults take two tablets daily."),
  score: number(0.82),
};
const message = (role: "user" | "assistant") => ({
  id: uuid(),
  conversation_id: uuid("3f0c2a8e-9b1d-4c7e-8a6f-5d4e3c2b1a09"),
  turn: integer(1),
  role,
  version: integer(1),
  active: boolean(true),
  content: string(role === "user" ? "How many tablets daily?" : "Adults take two tablets daily [1]."),
  client_message_id: role === "user" ? string("socket-1") : nullValue(),
  reply_to: role === "user" ? nullValue() : uuid("5e8a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"),
  citations: role === "user" ? [] : eachLike(citation),
  created_at: isoTime(),
});

/** Any message of a thread (history): questions and answers alike, so only what both always carry. */
const anyMessage = {
  id: uuid(),
  conversation_id: uuid("3f0c2a8e-9b1d-4c7e-8a6f-5d4e3c2b1a09"),
  turn: integer(1),
  role: regex("^(user|assistant)$", "user"),
  version: integer(1),
  active: boolean(true),
  content: string("How many tablets daily?"),
  citations: eachLike(citation, 0),
  created_at: isoTime(),
};

/** The frame as the socket would deliver it (JSON text), through the client's parser. */
const receive = (m: { contents: { content: unknown } }): ChatEvent =>
  parseChatEvent(JSON.stringify(m.contents.content));

const frames: [string, object, (event: ChatEvent) => void][] = [
  [
    "a connected frame",
    { type: "connected", conversation_id: uuid(), user_id: uuid("1b4e28ba-2fa1-4d2b-883f-0016d3cca427") },
    (e) => expect(e.type).toBe("connected"),
  ],
  [
    "a history frame with the stored turns",
    { type: "history", messages: eachLike(anyMessage) },
    (e) => expect(e.type === "history" && e.messages[0]?.role).toBe("user"),
  ],
  [
    "a user_message.created frame",
    { type: "user_message.created", message: message("user"), replayed: boolean(false) },
    (e) => expect(e.type === "user_message.created" && e.message.client_message_id).toBe("socket-1"),
  ],
  ["a chunk frame", { type: "chunk", text: string("Adults take ") }, (e) => expect(e.type).toBe("chunk")],
  [
    "a message.done frame with its citations",
    { type: "message.done", message: message("assistant"), citations: eachLike(citation), replayed: boolean(false) },
    (e) => expect(e.type === "message.done" && e.citations[0]?.index).toBe(1),
  ],
  [
    "an error frame naming the field at fault",
    {
      type: "error",
      code: regex("^[A-Z_]+$", "VALIDATION_FAILED"),
      message: string("content must not be empty"),
      requestId: uuid("0f8fad5b-d9cb-469f-a165-70867728950e"),
      errors: eachLike({ field: string("content"), message: string("must not be empty") }),
    },
    (e) => expect(e.type === "error" && e.errors?.[0]?.field).toBe("content"),
  ],
  ["a pong frame", { type: "pong" }, (e) => expect(e.type).toBe("pong")],
];

describe("chat socket server frames", () => {
  for (const [description, content, check] of frames) {
    it(`parses ${description}`, () =>
      pact
        .addAsynchronousInteraction()
        .expectsToReceive(description, (builder) => builder.withJSONContent(content))
        .executeTest(async (m) => check(receive(m))));
  }
});
