// The chat WebSocket as a client uses it (GET /api/realtime/ws, docs/api.md): connect with the bearer
// subprotocol, read the history frame, send a message with its client_message_id, read the turn's frames. When
// the socket closes before the answer (an evicted chat room), the client reconnects and sends the same
// client_message_id again, which the server answers with the stored turn instead of storing a second one.

const PROTOCOL = "voiceassist.chat.v1";

// biome-ignore lint/suspicious/noExplicitAny: frames are parsed loosely; callers read the fields they need
type Frame = Record<string, any>;

export interface ChatTurn {
  /** The server stored the question (a user_message.created frame, or the question in a later history frame). */
  stored: boolean;
  /** The answer arrived (message.done). */
  answered: boolean;
  /** Connections opened after the first (each after a close the client did not ask for). */
  reconnects: number;
  /** The last error frame's code, or why the socket could not be opened. */
  error?: string;
  /** Message ids a history frame listed more than once. */
  duplicatedInHistory: string[];
}

/** One connection: frames as they arrive, until it closes. */
function connect(base: string, conversationId: string, token: string, timeoutMs: number) {
  const url = `${base.replace(/^http/, "ws")}/api/realtime/ws?conversation_id=${conversationId}`;
  const socket = new WebSocket(url, [PROTOCOL, `bearer.${token}`]);
  const frames: Frame[] = [];
  let closed = false;
  let wake = () => {};
  socket.addEventListener("message", (event) => {
    try {
      frames.push(JSON.parse(String(event.data)));
    } catch {
      frames.push({ type: "unparseable" });
    }
    wake();
  });
  const onEnd = () => {
    closed = true;
    wake();
  };
  socket.addEventListener("close", onEnd);
  socket.addEventListener("error", onEnd);
  const deadline = Date.now() + timeoutMs;
  /** The first frame matching, or undefined once the socket closed or the deadline passed. */
  const until = async (match: (f: Frame) => boolean): Promise<Frame | undefined> => {
    for (;;) {
      const found = frames.find(match);
      if (found || closed || Date.now() > deadline) return found;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
    }
  };
  return { socket, frames, until, isClosed: () => closed };
}

const duplicates = (ids: string[]) => ids.filter((id, i) => ids.indexOf(id) !== i);

/** Sends one message and follows it to its answer, reconnecting up to `attempts` times. Never throws. */
export async function chatTurn(
  base: string,
  conversationId: string,
  token: string,
  message: { content: string; clientMessageId: string },
  options: { attempts?: number; timeoutMs?: number } = {},
): Promise<ChatTurn> {
  const result: ChatTurn = { stored: false, answered: false, reconnects: -1, duplicatedInHistory: [] };
  for (let attempt = 0; attempt < (options.attempts ?? 4) && !result.answered; attempt++) {
    result.reconnects++;
    const connection = connect(base, conversationId, token, options.timeoutMs ?? 60_000);
    try {
      const history = await connection.until((f) => f.type === "history");
      if (!history) {
        result.error = connection.frames.find((f) => f.type === "error")?.code ?? "closed before history";
        continue;
      }
      const messages = (history.messages ?? []) as { id: string; client_message_id: string | null }[];
      result.duplicatedInHistory.push(...duplicates(messages.map((m) => m.id)));
      if (messages.some((m) => m.client_message_id === message.clientMessageId)) result.stored = true;
      connection.socket.send(
        JSON.stringify({ type: "message", content: message.content, client_message_id: message.clientMessageId }),
      );
      // Frames of this message only (the room broadcasts every turn to every socket on the conversation).
      const question = await connection.until(
        (f) =>
          f.type === "error" ||
          (f.type === "user_message.created" && f.message?.client_message_id === message.clientMessageId),
      );
      if (question?.type === "user_message.created") result.stored = true;
      const end =
        question?.type === "user_message.created"
          ? await connection.until(
              (f) => f.type === "error" || (f.type === "message.done" && f.message?.reply_to === question.message.id),
            )
          : question;
      if (end?.type === "message.done") result.answered = true;
      else if (end?.type === "error") {
        result.error = String(end.code);
        // A refusal (validation, budget, a dependency down) is an answer too: trying again would not change it.
        if (!connection.isClosed()) break;
      }
    } finally {
      connection.socket.close(1000);
    }
  }
  result.reconnects = Math.max(0, result.reconnects);
  return result;
}

/** The history frame a client gets on connecting (the thread's latest messages), or undefined without one. */
export async function chatHistory(
  base: string,
  conversationId: string,
  token: string,
): Promise<{ id: string; role: string }[] | undefined> {
  const connection = connect(base, conversationId, token, 30_000);
  try {
    return (await connection.until((f) => f.type === "history"))?.messages;
  } finally {
    connection.socket.close(1000);
  }
}
