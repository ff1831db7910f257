// Consumer pact of the reference API client (clients/api-client): what it sends and the answers it relies on.
// Writes contracts/voiceassist-web-client-voiceassist-api.json (see support/pacts.ts); the provider test replays it.
import { MatchersV3, PactV4 } from "@pact-foundation/pact";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiProblem, VoiceAssistClient } from "../../clients/api-client/src/index.ts";
import { bearer, expectCommitted, fromState, isoTime, jsonType, PROVIDER, scratchDir, uuid } from "./support/pacts.ts";
import { CONTRACT_PASSWORD, FLAG_KEY, READER_EMAIL, states } from "./support/states.ts";

const { boolean, eachLike, integer, like, nullValue, number, regex, string } = MatchersV3;
const CONSUMER = "voiceassist-web-client";
const FILE = `${CONSUMER}-${PROVIDER}.json`;
const ACCESS = "example-access-token";
const CONVERSATION = "3f0c2a8e-9b1d-4c7e-8a6f-5d4e3c2b1a09";
const DOCUMENT = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

let dir: string;
let pact: PactV4;
beforeAll(async () => {
  dir = await scratchDir();
  pact = new PactV4({ consumer: CONSUMER, provider: PROVIDER, dir, logLevel: "warn" });
});
afterAll(() => expectCommitted(dir, FILE));

const client = (baseUrl: string, refresh = "example-refresh-token") =>
  new VoiceAssistClient({ baseUrl, tokens: { access_token: ACCESS, refresh_token: refresh } });

const json = { "Content-Type": jsonType() };
const tokens = {
  access_token: string("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
  refresh_token: string("nTwvzPr470tfn8Dq7w2rDQtqtajKN202HHy0lcJf-4g"),
  token_type: "Bearer",
  expires_in: integer(900),
  refresh_expires_in: integer(86400),
  user: { id: uuid(), email: string(READER_EMAIL), role: regex("^(user|viewer|admin)$", "user") },
};
const conversation = {
  id: uuid(CONVERSATION),
  title: string("Dosage questions"),
  folder: nullValue(),
  archived: boolean(false),
  created_at: isoTime(),
  updated_at: isoTime(),
};
const citation = {
  index: integer(1),
  document_id: uuid(DOCUMENT),
  title: string("Contract dosage guide"),
  chunk_id: string("7c9e6679-7425-40de-944b-e07fc1f90ae7:1:0"),
  snippet: string("Adults take two tablets of paracetamol daily with water."),
  score: number(0.82),
};
const message = (role: "user" | "assistant") => ({
  id: uuid(role === "user" ? "5e8a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c" : "6f9b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"),
  conversation_id: uuid(CONVERSATION),
  turn: integer(1),
  role,
  version: integer(1),
  active: boolean(true),
  content: string(role === "user" ? "How many tablets daily?" : "Adults take two tablets daily [1]."),
  client_message_id: role === "user" ? string("web-1") : nullValue(),
  reply_to: role === "user" ? nullValue() : uuid("5e8a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"),
  citations: role === "user" ? [] : eachLike(citation),
  created_at: isoTime(),
});
const document = {
  id: uuid(DOCUMENT),
  title: string("Contract dosage guide"),
  source_type: string("upload"),
  tags: eachLike("contract"),
  mime_type: string("text/markdown"),
  byte_size: integer(120),
  status: regex("^(queued|processing|ready|failed)$", "ready"),
  chunk_count: integer(1),
  created_at: isoTime(),
  updated_at: isoTime(),
  status_url: regex("^/api/admin/kb/documents/[0-9a-f-]{36}$", `/api/admin/kb/documents/${DOCUMENT}`),
};
const problem = (status: number, code: string) => ({
  type: `urn:voiceassist:problem:${code.toLowerCase()}`,
  title: string("Validation failed"),
  status,
  detail: string("The request is invalid."),
  code,
  requestId: string("0f8fad5b-d9cb-469f-a165-70867728950e"),
});

describe("sign-in and refresh", () => {
  it("signs in with email and password", () =>
    pact
      .addInteraction()
      .given(states.account, { email: READER_EMAIL, password: CONTRACT_PASSWORD })
      .uponReceiving("a sign-in with email and password")
      .withRequest("POST", "/api/auth/login", (req) =>
        req.headers(json).jsonBody({ email: READER_EMAIL, password: CONTRACT_PASSWORD }),
      )
      .willRespondWith(200, (res) => res.headers(json).jsonBody(tokens))
      .executeTest(async (server) => {
        const signedIn = await new VoiceAssistClient({ baseUrl: server.url }).signIn(READER_EMAIL, CONTRACT_PASSWORD);
        expect(signedIn.user.role).toBe("user");
        expect(signedIn.token_type).toBe("Bearer");
      }));

  it("trades a refresh token for new tokens", () =>
    pact
      .addInteraction()
      .given(states.signedIn)
      .uponReceiving("a refresh of the session's tokens")
      .withRequest("POST", "/api/auth/refresh", (req) =>
        req.headers(json).jsonBody({ refresh_token: fromState("{refreshToken}", "example-refresh-token") }),
      )
      .willRespondWith(200, (res) => res.headers(json).jsonBody(tokens))
      .executeTest(async (server) => {
        const seen: string[] = [];
        const api = new VoiceAssistClient({
          baseUrl: server.url,
          tokens: { access_token: ACCESS, refresh_token: "example-refresh-token" },
          onTokens: (t) => seen.push(t.refresh_token),
        });
        const renewed = await api.refresh();
        expect(seen).toEqual([renewed.refresh_token]);
      }));
});

describe("conversations", () => {
  it("creates a conversation", () =>
    pact
      .addInteraction()
      .given(states.signedIn)
      .uponReceiving("a new conversation with a title")
      .withRequest("POST", "/api/conversations", (req) =>
        req.headers({ ...json, authorization: bearer("accessToken", ACCESS) }).jsonBody({ title: "Dosage questions" }),
      )
      .willRespondWith(201, (res) => res.headers(json).jsonBody(conversation))
      .executeTest(async (server) => {
        const created = await client(server.url).createConversation({ title: "Dosage questions" });
        expect(created.archived).toBe(false);
      }));

  it("lists conversations", () =>
    pact
      .addInteraction()
      .given(states.conversation)
      .uponReceiving("a page of the user's conversations")
      .withRequest("GET", "/api/conversations", (req) =>
        req.headers({ authorization: bearer("accessToken", ACCESS) }).query({ page: "1", page_size: "20" }),
      )
      .willRespondWith(200, (res) =>
        res.headers(json).jsonBody({ items: eachLike(conversation), total: integer(1), page: 1, page_size: 20 }),
      )
      .executeTest(async (server) => {
        const page = await client(server.url).listConversations({ page: 1, page_size: 20 });
        expect(page.items[0]?.id).toBe(CONVERSATION);
      }));

  it("sends a message and gets the answer as JSON", () =>
    pact
      .addInteraction()
      .given(states.conversation)
      .uponReceiving("a question in a conversation, answered as JSON")
      .withRequest(
        "POST",
        fromState("/api/conversations/{conversationId}/messages", `/api/conversations/${CONVERSATION}/messages`),
        (req) =>
          req
            .headers({ ...json, authorization: bearer("accessToken", ACCESS) })
            .jsonBody({ content: "How many tablets daily?", client_message_id: "web-1", stream: false }),
      )
      .willRespondWith(201, (res) =>
        res.headers(json).jsonBody({
          user_message: message("user"),
          assistant_message: message("assistant"),
          answer: {
            content: string("Adults take two tablets daily [1]."),
            citations: eachLike(citation),
            outcome: regex("^(answered|no_sources)$", "answered"),
            provider: string("local"),
            model: string("local-extractive-v1"),
            usage: { prompt_tokens: integer(120), completion_tokens: integer(12) },
            latency_ms: integer(25),
            disclaimer: string("This information supports, and does not replace, clinical judgement."),
          },
          replayed: boolean(false),
        }),
      )
      .executeTest(async (server) => {
        const turn = await client(server.url).sendMessage(CONVERSATION, {
          content: "How many tablets daily?",
          client_message_id: "web-1",
        });
        expect(turn.assistant_message.reply_to).toBe(turn.user_message.id);
        expect(turn.answer.citations[0]?.document_id).toBe(DOCUMENT);
      }));
});

describe("knowledge-base admin", () => {
  it("lists documents", () =>
    pact
      .addInteraction()
      .given(states.document)
      .uponReceiving("a page of knowledge-base documents")
      .withRequest("GET", "/api/admin/kb/documents", (req) =>
        req.headers({ authorization: bearer("accessToken", ACCESS) }).query({ page: "1", page_size: "20" }),
      )
      .willRespondWith(200, (res) =>
        res.headers(json).jsonBody({ items: eachLike(document), total: integer(1), page: 1, page_size: 20 }),
      )
      .executeTest(async (server) => {
        const page = await client(server.url).listDocuments({ page: 1, page_size: 20 });
        expect(page.items[0]?.status).toBe("ready");
      }));

  it("gets one document", () =>
    pact
      .addInteraction()
      .given(states.document)
      .uponReceiving("a knowledge-base document by id")
      .withRequest(
        "GET",
        fromState("/api/admin/kb/documents/{documentId}", `/api/admin/kb/documents/${DOCUMENT}`),
        (req) => req.headers({ authorization: bearer("accessToken", ACCESS) }),
      )
      .willRespondWith(200, (res) => res.headers(json).jsonBody(document))
      .executeTest(async (server) => {
        const found = await client(server.url).getDocument(DOCUMENT);
        expect(found.status_url).toBe(`/api/admin/kb/documents/${DOCUMENT}`);
      }));
});

describe("flags", () => {
  it("evaluates every flag for the caller", () =>
    pact
      .addInteraction()
      .given(states.flag, { key: FLAG_KEY })
      .uponReceiving("an evaluation of the caller's flags")
      .withRequest("POST", "/api/flags/evaluate", (req) =>
        req.headers({ ...json, authorization: bearer("accessToken", ACCESS) }).jsonBody({}),
      )
      .willRespondWith(200, (res) =>
        res.headers(json).jsonBody({
          version: integer(3),
          flags: {
            [FLAG_KEY]: {
              enabled: boolean(true),
              value: like(true),
              variant: { name: string("disabled"), enabled: boolean(false) },
              reason: string("DEFAULT"),
              version: integer(1),
            },
          },
        }),
      )
      .executeTest(async (server) => {
        const evaluation = await client(server.url).evaluateFlags();
        expect(evaluation.flags[FLAG_KEY]?.enabled).toBe(true);
      }));
});

describe("the error envelope", () => {
  it("is a 401 problem without credentials", () =>
    pact
      .addInteraction()
      .uponReceiving("a conversation list without credentials")
      .withRequest("GET", "/api/conversations")
      .willRespondWith(401, (res) =>
        res.headers({ "Content-Type": jsonType("problem+json") }).jsonBody(problem(401, "UNAUTHORIZED")),
      )
      .executeTest(async (server) => {
        const failure = await new VoiceAssistClient({ baseUrl: server.url }).listConversations().catch((e) => e);
        expect(failure).toBeInstanceOf(ApiProblem);
        expect(failure).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
      }));

  it("is a 422 problem naming each field", () =>
    pact
      .addInteraction()
      .given(states.signedIn)
      .uponReceiving("a new conversation with an empty title")
      .withRequest("POST", "/api/conversations", (req) =>
        req.headers({ ...json, authorization: bearer("accessToken", ACCESS) }).jsonBody({ title: "" }),
      )
      .willRespondWith(422, (res) =>
        res.headers({ "Content-Type": jsonType("problem+json") }).jsonBody({
          ...problem(422, "VALIDATION_FAILED"),
          errors: eachLike({ field: regex("^body\\.title$", "body.title"), message: string("must not be empty") }),
        }),
      )
      .executeTest(async (server) => {
        const failure = await client(server.url)
          .createConversation({ title: "" })
          .catch((e) => e);
        expect(failure).toBeInstanceOf(ApiProblem);
        expect((failure as ApiProblem).fieldError("body.title")).toBe("must not be empty");
      }));
});
