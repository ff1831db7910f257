import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type WebSocket, WebSocketServer } from "ws";
import { closeServer, createLocalServer, listenOnFreePort, sendJson } from "../../scripts/local-stack/http.ts";
import {
  type AudioFormat,
  type ClientEvent,
  type ClientItem,
  errorEvent,
  functionCallItem,
  type Item,
  type MessageItem,
  mergeSession,
  messageItem,
  newId,
  newResponse,
  newSession,
  parseClientEvent,
  type RealtimeResponse,
  type ResponseParams,
  responseUsage,
  type ServerEvent,
  type Session,
  serverEvent,
  storeItem,
} from "../../src/voice/protocol.ts";

/**
 * A local OpenAI Realtime (GA) server for tests of the voice relay: a Durable Object dials
 * `fetch("http://127.0.0.1:<port>/v1/realtime?model=<m>", { headers: { Upgrade: "websocket",
 * Authorization: "Bearer <key>" } })` (or `ws://` with the `ws` client). It speaks the shapes our own
 * protocol builds (src/voice/protocol.ts), so every event is GA-valid (test/realtime-conformance.ts).
 *
 * A missing key, or one starting with "sk-invalid", gets a 401 instead of the upgrade; no `model` a 400.
 * On connect: session.created. session.update merges (session.updated); conversation.item.create/delete/
 * truncate/retrieve keep a conversation. There is no VAD: audio is counted on append and turned into a user
 * item on commit, with a transcript "stand-in transcript of N ms" (or, when the appended bytes are the ASCII
 * text "!transcript <text>", NUL-padded or not, exactly <text>) and its transcription delta/completed events.
 * Audio appended while a response is in progress gets input_audio_buffer.speech_started (a barge-in; the
 * response goes on until the client sends response.cancel), and the commit then speech_stopped.
 *
 * response.create answers the last user message (its text, or its audio's transcript):
 *   - with a search_knowledge_base function call ({"query": <that text>}, arguments streamed in pieces) when
 *     the session (or response.create) has that tool, tool_choice is not "none" and no function_call_output
 *     follows the user message yet;
 *   - after a function_call_output: "According to <title> [1]: <first 60 chars of its snippet or text>",
 *     from the first object with a string `title` in the output's JSON ("The knowledge base does not cover
 *     this question." without one);
 *   - otherwise "Stand-in answer to: <text>".
 * Answers stream as output_audio_transcript deltas (one per word) with three 100 ms chunks of silence, or
 * output_text deltas when the response's modality is text, `delayMs` (default 30) between deltas.
 * response.cancel stops the stream: output item incomplete, response.done cancelled.
 *
 * Script words in the last user text (anywhere in it):
 *   "!notool"      no function call for this turn
 *   "!reply <text>" the answer is exactly <text> (the rest of the line)
 *   "!slow=MS"     MS between deltas, from now on for this connection
 *   "!drop"        after response.created the socket is cut (no close frame: the client sees 1006)
 *   "!error"       an `error` event (server_error) instead of a response
 * "!drop" and "!error" fire once per distinct user text (so a client that reconnects and replays the
 * conversation gets an answer); "!drop=N" / "!error=N" fire N times. POST /__reset forgets the counts.
 *
 * Control on the same port: GET /__sessions[?contains=<text>] lists every connection (refused upgrades too):
 * model, the Authorization header, each client event in order with its body (append audio summarised as
 * "[N bytes]"), the server event types sent, the conversation, and whether it closed, with what code and
 * by whom ("client" or "server"). POST /__reset empties the log (open connections go on, unlisted).
 */

export interface RealtimeClientEventLog {
  type: string;
  /** The event as received (append audio as "[N bytes]"); the raw text when it was not JSON. */
  body: unknown;
  /** The error code answered when the event was refused. */
  error?: string | null;
}

export interface RealtimeConnectionLog {
  id: number;
  path: string;
  model: string | null;
  authorization: string | null;
  headers: IncomingHttpHeaders;
  /** The status the upgrade was refused with; null when the socket opened. */
  refused: number | null;
  sessionId: string | null;
  openedAt: string;
  events: RealtimeClientEventLog[];
  /** Server event types, in the order sent. */
  sent: string[];
  conversation: unknown[];
  closed: boolean;
  closedBy: "client" | "server" | null;
  closeCode: number | null;
  closeReason: string | null;
}

export interface RealtimeStandInOptions {
  /** Delay between streamed deltas, ms (a "!slow=MS" user text overrides it per connection). */
  delayMs?: number;
}

const SEARCH_TOOL_NAME = "search_knowledge_base";
const AUDIO_CHUNKS = 3;
const AUDIO_CHUNK_MS = 100;
const MIN_COMMIT_MS = 100;
const SNIPPET_CHARS = 60;
const SCRIPTED_TRANSCRIPT = "!transcript ";

interface ActiveResponse {
  response: RealtimeResponse;
  cancelled: boolean;
}

interface Connection {
  log: RealtimeConnectionLog;
  ws: WebSocket;
  session: Session;
  conversationId: string;
  items: Item[];
  /** Audio sent per assistant item, ms: truncate may not cut beyond it. */
  audioSent: Map<string, number>;
  bufferBytes: number;
  /** The first bytes of the buffer, for the "!transcript" trick. */
  bufferHead: Buffer;
  /** Audio appended over the connection, ms (speech_started/stopped are relative to it). */
  audioMs: number;
  /** The id the committed user item gets once speech_started named it. */
  speechItemId: string | undefined;
  delayMs: number;
  active: ActiveResponse | undefined;
  closingByServer: boolean;
}

export async function startRealtimeStandIn(
  options: RealtimeStandInOptions = {},
): Promise<{ url: string; stop(): Promise<void> }> {
  const logs: RealtimeConnectionLog[] = [];
  const connections = new Set<Connection>();
  const scriptCounts = new Map<string, number>();
  let nextId = 1;

  const server = createLocalServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://standin");
    if (request.method === "GET" && url.pathname === "/__sessions") {
      const contains = url.searchParams.get("contains") ?? "";
      sendJson(
        response,
        200,
        logs.filter((log) => JSON.stringify(log.events).includes(contains)),
      );
      return;
    }
    if (request.method === "POST" && url.pathname === "/__reset") {
      logs.length = 0;
      scriptCounts.clear();
      sendJson(response, 200, { ok: true });
      return;
    }
    if (url.pathname === "/v1/realtime") {
      sendJson(response, 426, openAiError("This endpoint needs a WebSocket upgrade.", "invalid_request_error"));
      return;
    }
    sendJson(response, 404, openAiError(`Unknown request URL: ${request.method} ${url.pathname}.`, "unknown_url"));
  });

  const wss = new WebSocketServer({ noServer: true });

  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? "/", "http://standin");
    const authorization = request.headers.authorization ?? null;
    const log: RealtimeConnectionLog = {
      id: nextId++,
      path: url.pathname,
      model: url.searchParams.get("model"),
      authorization,
      headers: request.headers,
      refused: null,
      sessionId: null,
      openedAt: new Date().toISOString(),
      events: [],
      sent: [],
      conversation: [],
      closed: false,
      closedBy: null,
      closeCode: null,
      closeReason: null,
    };
    logs.push(log);
    const refuse = (status: number, body: unknown) => {
      Object.assign(log, { refused: status, closed: true, closedBy: "server" });
      refuseUpgrade(socket, status, body);
    };
    if (url.pathname !== "/v1/realtime") {
      return refuse(404, openAiError(`Unknown request URL: GET ${url.pathname}.`, "unknown_url"));
    }
    const key = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
    if (!key || key.startsWith("sk-invalid")) {
      return refuse(401, openAiError("Incorrect API key provided.", "invalid_api_key"));
    }
    if (!log.model) return refuse(400, openAiError("Missing required parameter: 'model'.", "missing_model"));
    const model = log.model;
    wss.handleUpgrade(request, socket, head, (ws) => {
      const session = newSession(model);
      log.sessionId = session.id;
      const connection: Connection = {
        log,
        ws,
        session,
        conversationId: newId("conv"),
        items: [],
        audioSent: new Map(),
        bufferBytes: 0,
        bufferHead: Buffer.alloc(0),
        audioMs: 0,
        speechItemId: undefined,
        delayMs: options.delayMs ?? 30,
        active: undefined,
        closingByServer: false,
      };
      connections.add(connection);
      ws.on("message", (data) => handleFrame(connection, String(data)));
      ws.on("close", (code, reason) => {
        connections.delete(connection);
        if (connection.active) connection.active.cancelled = true;
        Object.assign(log, {
          closed: true,
          closedBy: connection.closingByServer ? "server" : "client",
          closeCode: code,
          closeReason: reason.toString(),
        });
      });
      ws.on("error", () => {
        // A broken socket ends in "close"; nothing else to do.
      });
      send(connection, serverEvent("session.created", { session }));
    });
  });

  /** Decides once per distinct text (or N times with "=N") whether a scripted fault fires. */
  function scripted(kind: "drop" | "error", text: string): boolean {
    const match = new RegExp(`(?:^|\\s)!${kind}(?:=(\\d+))?(?=\\s|$)`).exec(text);
    if (!match) return false;
    const key = `${kind}\n${text}`;
    const seen = scriptCounts.get(key) ?? 0;
    if (seen >= Number(match[1] ?? 1)) return false;
    scriptCounts.set(key, seen + 1);
    return true;
  }

  function handleFrame(connection: Connection, text: string): void {
    const parsed = parseClientEvent(text);
    let body: unknown;
    try {
      body = summariseAudio(JSON.parse(text));
    } catch {
      body = text;
    }
    const type = (body as { type?: unknown } | null)?.type;
    const entry: RealtimeClientEventLog = { type: typeof type === "string" ? type : "", body };
    connection.log.events.push(entry);
    if (!parsed.ok) {
      entry.error = parsed.error.error.code;
      send(connection, parsed.error);
      return;
    }
    const refusal = handleEvent(connection, parsed.event);
    if (refusal) {
      entry.error = refusal.error.code;
      send(connection, refusal);
    }
    connection.log.conversation = connection.items.map(summariseAudio);
  }

  /** Handles one valid client event; returns the error event to answer when it is refused. */
  function handleEvent(connection: Connection, event: ClientEvent): ServerEvent<"error"> | undefined {
    const fail = (code: string, message: string, param: string | null = null) =>
      errorEvent({ code, message, param, event_id: event.event_id ?? null });
    const { items } = connection;
    switch (event.type) {
      case "session.update": {
        if (event.session.model && event.session.model !== connection.session.model) {
          return fail("invalid_value", "The model of a session cannot be changed.", "session.model");
        }
        connection.session = mergeSession(connection.session, event.session);
        send(connection, serverEvent("session.updated", { session: connection.session }));
        return undefined;
      }
      case "input_audio_buffer.append": {
        const bytes = Buffer.from(event.audio, "base64");
        const ms = durationMs(bytes.length, connection.session.audio.input.format);
        if (connection.active && connection.speechItemId === undefined) {
          connection.speechItemId = newId("item");
          send(
            connection,
            serverEvent("input_audio_buffer.speech_started", {
              item_id: connection.speechItemId,
              audio_start_ms: Math.round(connection.audioMs),
            }),
          );
        }
        connection.bufferBytes += bytes.length;
        if (connection.bufferHead.length < 4096) {
          connection.bufferHead = Buffer.concat([connection.bufferHead, bytes]).subarray(0, 4096);
        }
        connection.audioMs += ms;
        return undefined;
      }
      case "input_audio_buffer.clear":
        clearBuffer(connection);
        send(connection, serverEvent("input_audio_buffer.cleared", {}));
        return undefined;
      case "input_audio_buffer.commit": {
        const format = connection.session.audio.input.format;
        const ms = Math.round(durationMs(connection.bufferBytes, format));
        const scriptedText = scriptedTranscript(connection.bufferHead);
        if (scriptedText === undefined && ms < MIN_COMMIT_MS) {
          return fail(
            "input_audio_buffer_commit_empty",
            `Error committing input audio buffer: buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio, but buffer only has ${ms}ms of audio.`,
          );
        }
        const itemId = connection.speechItemId ?? newId("item");
        if (connection.speechItemId) {
          send(
            connection,
            serverEvent("input_audio_buffer.speech_stopped", {
              item_id: itemId,
              audio_end_ms: Math.round(connection.audioMs),
            }),
          );
        }
        clearBuffer(connection);
        const previous = items.at(-1)?.id ?? null;
        send(connection, serverEvent("input_audio_buffer.committed", { item_id: itemId, previous_item_id: previous }));
        const item = { ...messageItem("user", [{ type: "input_audio" }]), id: itemId };
        addItem(connection, item, previous);
        const transcript = scriptedText ?? `stand-in transcript of ${ms} ms`;
        const pieces = transcript.match(/\S+\s*/g) ?? [transcript];
        for (const delta of pieces) {
          send(
            connection,
            serverEvent("conversation.item.input_audio_transcription.delta", {
              item_id: itemId,
              content_index: 0,
              delta,
            }),
          );
        }
        item.content = [{ type: "input_audio", transcript }];
        const audioTokens = Math.ceil(ms / 100);
        const textTokens = tokens(transcript);
        send(
          connection,
          serverEvent("conversation.item.input_audio_transcription.completed", {
            item_id: itemId,
            content_index: 0,
            transcript,
            usage: {
              type: "tokens",
              input_tokens: audioTokens,
              output_tokens: textTokens,
              total_tokens: audioTokens + textTokens,
              input_token_details: { text_tokens: 0, audio_tokens: audioTokens },
            },
          }),
        );
        return undefined;
      }
      case "conversation.item.create": {
        const { previous_item_id: after } = event;
        if (event.item.id && items.some((i) => i.id === event.item.id)) {
          return fail("item_already_exists", `Item with id '${event.item.id}' already exists.`, "item.id");
        }
        let at = items.length;
        if (after === "root") at = 0;
        else if (after) {
          const index = items.findIndex((i) => i.id === after);
          if (index < 0) {
            return fail("item_not_found", `Previous item with id '${after}' does not exist.`, "previous_item_id");
          }
          at = index + 1;
        }
        const item = storeItem(withCallId(event.item)) as Item;
        addItem(connection, item, items[at - 1]?.id ?? null, at);
        return undefined;
      }
      case "conversation.item.retrieve": {
        const item = items.find((i) => i.id === event.item_id);
        if (!item) return fail("item_not_found", `Item with item_id '${event.item_id}' not found.`, "item_id");
        send(connection, serverEvent("conversation.item.retrieved", { item }));
        return undefined;
      }
      case "conversation.item.delete": {
        const index = items.findIndex((i) => i.id === event.item_id);
        if (index < 0) return fail("item_not_found", `Item with item_id '${event.item_id}' not found.`, "item_id");
        items.splice(index, 1);
        send(connection, serverEvent("conversation.item.deleted", { item_id: event.item_id }));
        return undefined;
      }
      case "conversation.item.truncate": {
        const item = items.find((i) => i.id === event.item_id);
        if (item?.type !== "message" || item.role !== "assistant") {
          return fail("item_not_found", `Assistant message '${event.item_id}' not found.`, "item_id");
        }
        const part = item.content[event.content_index];
        if (part?.type !== "output_audio") {
          return fail("invalid_value", "Only audio content can be truncated.", "content_index");
        }
        const sent = connection.audioSent.get(item.id) ?? 0;
        if (event.audio_end_ms > sent) {
          return fail(
            "invalid_value",
            `audio_end_ms (${event.audio_end_ms}) is beyond the ${sent} ms of audio sent for this item.`,
            "audio_end_ms",
          );
        }
        // As OpenAI does: the transcript of a truncated item is dropped (the model did not "say" the rest).
        item.content[event.content_index] = { type: "output_audio", transcript: "" };
        send(
          connection,
          serverEvent("conversation.item.truncated", {
            item_id: event.item_id,
            content_index: event.content_index,
            audio_end_ms: event.audio_end_ms,
          }),
        );
        return undefined;
      }
      case "response.cancel": {
        const active = connection.active;
        if (!active || (event.response_id && event.response_id !== active.response.id)) {
          return fail("response_cancel_not_active", "Cancellation failed: no active response found.");
        }
        active.cancelled = true;
        return undefined;
      }
      case "response.create": {
        if (connection.active) {
          return fail(
            "conversation_already_has_active_response",
            `Conversation already has an active response in progress: ${connection.active.response.id}. Wait until the response is finished before creating a new one.`,
          );
        }
        const params = event.response ?? {};
        const context = contextItems(connection, params);
        if (context instanceof Error) return fail("item_not_found", context.message, "response.input");
        const user = lastUserText(context);
        if (scripted("error", user)) {
          send(
            connection,
            errorEvent({
              type: "server_error",
              code: "server_error",
              message: "Scripted failure (!error): the server had an error while processing your request.",
              event_id: event.event_id ?? null,
            }),
          );
          return undefined;
        }
        const slow = /(?:^|\s)!slow=(\d+)/.exec(user)?.[1];
        if (slow) connection.delayMs = Number(slow);
        const response = newResponse(connection.session, params, connection.conversationId);
        const active: ActiveResponse = { response, cancelled: false };
        connection.active = active;
        send(connection, serverEvent("response.created", { response }));
        if (scripted("drop", user)) {
          connection.closingByServer = true;
          connection.ws.terminate();
          return undefined;
        }
        void respond(connection, active, params, context, user).catch(() => {
          // The socket went away mid-stream: its close handler has recorded it.
        });
        return undefined;
      }
    }
  }

  const port = await listenOnFreePort(server);
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      for (const connection of connections) {
        connection.closingByServer = true;
        connection.ws.terminate();
      }
      wss.close();
      await closeServer(server);
    },
  };
}

function send(connection: Connection, event: ServerEvent): void {
  if (connection.ws.readyState !== connection.ws.OPEN) return;
  connection.log.sent.push(event.type);
  connection.ws.send(JSON.stringify(event));
}

function addItem(connection: Connection, item: Item, previous: string | null, at = connection.items.length): void {
  connection.items.splice(at, 0, item);
  send(connection, serverEvent("conversation.item.added", { previous_item_id: previous, item }));
  send(connection, serverEvent("conversation.item.done", { previous_item_id: previous, item }));
}

function clearBuffer(connection: Connection): void {
  connection.bufferBytes = 0;
  connection.bufferHead = Buffer.alloc(0);
  connection.speechItemId = undefined;
}

/** A function call created by the client without a call_id gets one, as OpenAI assigns it. */
function withCallId(item: ClientItem): ClientItem {
  return item.type === "function_call" && !item.call_id ? { ...item, call_id: newId("call") } : item;
}

/** The items a response answers from: response.create's `input` when given, else the conversation. */
function contextItems(connection: Connection, params: ResponseParams): Item[] | Error {
  if (!params.input) return connection.items;
  const context: Item[] = [];
  for (const entry of params.input) {
    if (entry.type === "item_reference") {
      const item = connection.items.find((i) => i.id === entry.id);
      if (!item) return new Error(`Item with id '${entry.id}' not found.`);
      context.push(item);
    } else context.push(storeItem(withCallId(entry)) as Item);
  }
  return context;
}

const isUserMessage = (item: Item): item is Extract<MessageItem, { role: "user" }> =>
  item.type === "message" && item.role === "user";

function lastUserText(items: Item[]): string {
  const user = items.findLast(isUserMessage);
  if (!user) return "";
  return user.content
    .map((part) => (part.type === "input_text" ? part.text : (part.transcript ?? "")))
    .join(" ")
    .trim();
}

/** Streams the answer to `user`: a search_knowledge_base call, or an assistant message. */
async function respond(
  connection: Connection,
  active: ActiveResponse,
  params: ResponseParams,
  context: Item[],
  user: string,
): Promise<void> {
  const { session } = connection;
  const { response } = active;
  const userIndex = context.findLastIndex(isUserMessage);
  const toolOutput = context.slice(userIndex + 1).findLast((i) => i.type === "function_call_output");
  const tools = params.tools ?? session.tools;
  const toolChoice = params.tool_choice ?? session.tool_choice;
  const canSearch =
    toolChoice !== "none" &&
    tools.some((t) => t.name === SEARCH_TOOL_NAME) &&
    (typeof toolChoice === "string" || toolChoice.name === SEARCH_TOOL_NAME);
  const inConversation = params.conversation !== "none";
  const inputTokens = context.reduce((sum, item) => sum + tokens(JSON.stringify(item)), 0);
  const pace = () => sleep(connection.delayMs);
  const emit = (event: ServerEvent) => send(connection, event);
  // The response's item joins the conversation when it starts (so it can be truncated mid-stream).
  const previous = connection.items.at(-1)?.id ?? null;
  const added = (item: Item) => {
    if (!inConversation) return;
    connection.items.push(item);
    emit(serverEvent("conversation.item.added", { previous_item_id: previous, item }));
  };
  let output: Item;
  let outputTokens: { text: number; audio: number };

  if (!toolOutput && userIndex >= 0 && canSearch && !/(?:^|\s)!notool(?=\s|$)/.test(user)) {
    // First turn of a grounded answer: ask for a search.
    const args = JSON.stringify({ query: user });
    const item = functionCallItem(SEARCH_TOOL_NAME, "", "in_progress");
    const at = { response_id: response.id, item_id: item.id, output_index: 0 };
    emit(serverEvent("response.output_item.added", { response_id: response.id, output_index: 0, item }));
    added(item);
    const third = Math.max(1, Math.ceil(args.length / 3));
    const pieces = [args.slice(0, third), args.slice(third, 2 * third), args.slice(2 * third)].filter(Boolean);
    let sent = "";
    for (const delta of pieces) {
      await pace();
      if (active.cancelled) break;
      sent += delta;
      emit(serverEvent("response.function_call_arguments.delta", { ...at, call_id: item.call_id, delta }));
    }
    if (!active.cancelled) {
      emit(
        serverEvent("response.function_call_arguments.done", {
          ...at,
          call_id: item.call_id,
          name: SEARCH_TOOL_NAME,
          arguments: args,
        }),
      );
    }
    output = { ...item, arguments: active.cancelled ? sent : args, status: statusOf(active) };
    outputTokens = { text: tokens(sent), audio: 0 };
  } else {
    const answer = answerText(user, toolOutput);
    const modality = response.output_modalities[0] ?? "audio";
    const audio = modality === "audio";
    const item = messageItem("assistant", [], "in_progress");
    const at = { response_id: response.id, item_id: item.id, output_index: 0, content_index: 0 };
    emit(serverEvent("response.output_item.added", { response_id: response.id, output_index: 0, item }));
    added(item);
    emit(
      serverEvent("response.content_part.added", {
        ...at,
        part: audio ? { type: "audio", transcript: "" } : { type: "text", text: "" },
      }),
    );
    // The conversation's copy follows the stream, so a truncate during it finds the audio part.
    const partOf = (text: string) =>
      audio ? { type: "output_audio" as const, transcript: text } : { type: "output_text" as const, text };
    item.content = [partOf("")];
    const words = answer.match(/\S+\s*/g) ?? [];
    const silence = silenceChunk(response.audio.output.format).toString("base64");
    const steps = Math.max(words.length, audio ? AUDIO_CHUNKS : 0);
    let said = "";
    let audioMs = 0;
    for (let i = 0; i < steps; i++) {
      await pace();
      if (active.cancelled) break;
      const word = words[i];
      if (word !== undefined) {
        said += word;
        const type = audio ? "response.output_audio_transcript.delta" : "response.output_text.delta";
        emit(serverEvent(type, { ...at, delta: word }));
        item.content = [partOf(said)];
      }
      if (audio && i < AUDIO_CHUNKS) {
        audioMs += AUDIO_CHUNK_MS;
        connection.audioSent.set(item.id, audioMs);
        emit(serverEvent("response.output_audio.delta", { ...at, delta: silence }));
      }
    }
    if (!active.cancelled) {
      if (audio) {
        emit(serverEvent("response.output_audio.done", at));
        emit(serverEvent("response.output_audio_transcript.done", { ...at, transcript: said }));
        emit(serverEvent("response.content_part.done", { ...at, part: { type: "audio", transcript: said } }));
      } else {
        emit(serverEvent("response.output_text.done", { ...at, text: said }));
        emit(serverEvent("response.content_part.done", { ...at, part: { type: "text", text: said } }));
      }
    }
    output = {
      ...item,
      status: statusOf(active),
      content: [partOf(said)],
    };
    outputTokens = { text: tokens(said), audio: audioMs / 50 };
  }

  emit(serverEvent("response.output_item.done", { response_id: response.id, output_index: 0, item: output }));
  if (inConversation) {
    const index = connection.items.findIndex((i) => i.id === output.id);
    if (index >= 0) connection.items[index] = output;
    emit(serverEvent("conversation.item.done", { previous_item_id: previous, item: output }));
  }
  connection.active = undefined;
  const finished = {
    ...response,
    status: active.cancelled ? "cancelled" : "completed",
    ...(active.cancelled ? { status_details: { type: "cancelled", reason: "client_cancelled" } } : {}),
    output: [output],
    usage: responseUsage({ text: inputTokens, audio: 0 }, outputTokens),
  } as RealtimeResponse & { usage: ReturnType<typeof responseUsage> };
  emit(serverEvent("response.done", { response: finished }));
  connection.log.conversation = connection.items.map(summariseAudio);
}

const statusOf = (active: ActiveResponse) => (active.cancelled ? "incomplete" : "completed");

function answerText(user: string, toolOutput: Item | undefined): string {
  const reply = /(?:^|\s)!reply (.*)$/m.exec(user)?.[1];
  if (reply !== undefined) return reply;
  if (toolOutput?.type === "function_call_output") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(toolOutput.output);
    } catch {
      parsed = undefined;
    }
    const source = findSource(parsed);
    if (!source) return "The knowledge base does not cover this question.";
    return `According to ${source.title} [1]: ${source.text.slice(0, SNIPPET_CHARS)}`;
  }
  return user ? `Stand-in answer to: ${user}` : "Hello from the stand-in.";
}

/** The first object (depth first) with a string `title`, and its `snippet` or `text`. */
function findSource(value: unknown): { title: string; text: string } | undefined {
  if (Array.isArray(value)) {
    for (const entry of value) {
      const found = findSource(entry);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.title === "string") {
    const text = typeof record.snippet === "string" ? record.snippet : record.text;
    return { title: record.title, text: typeof text === "string" ? text : "" };
  }
  return findSource(Object.values(record));
}

/** The text of "!transcript <text>" when the buffer starts with it (NUL padding allowed). */
function scriptedTranscript(head: Buffer): string | undefined {
  const text = head.toString("latin1");
  if (!text.startsWith(SCRIPTED_TRANSCRIPT)) return undefined;
  return text.slice(SCRIPTED_TRANSCRIPT.length).split("\0")[0]?.trim();
}

/** 100 ms of silence in the output format: zero pcm16, or the G.711 codes for zero. */
function silenceChunk(format: AudioFormat): Buffer {
  if (format.type === "audio/pcm") return Buffer.alloc((format.rate / 1000) * AUDIO_CHUNK_MS * 2);
  return Buffer.alloc(8 * AUDIO_CHUNK_MS, format.type === "audio/pcmu" ? 0xff : 0xd5);
}

function durationMs(bytes: number, format: AudioFormat): number {
  return format.type === "audio/pcm" ? bytes / ((format.rate / 1000) * 2) : bytes / 8;
}

const tokens = (text: string) => Math.ceil(text.length / 4);

/** A copy with every string `audio` field replaced by "[N bytes]", to keep the log small. */
function summariseAudio(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(summariseAudio);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, entry]) =>
      key === "audio" && typeof entry === "string"
        ? [key, `[${Buffer.from(entry, "base64").length} bytes]`]
        : [key, summariseAudio(entry)],
    ),
  );
}

function openAiError(message: string, code: string) {
  return { error: { message, type: "invalid_request_error", param: null, code } };
}

/** Answers an upgrade request with a plain HTTP error, as OpenAI does for a bad key. */
function refuseUpgrade(socket: Duplex, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  const reason = { 400: "Bad Request", 401: "Unauthorized", 404: "Not Found" }[status] ?? "Error";
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}
