// The workload an experiment runs through its fault: virtual clients picking operations from the experiment's
// mix (seeded), and a ledger of what the server acknowledged, which the invariants check afterwards.
import { randomUUID } from "node:crypto";
import { problemCodes } from "../src/errors.ts";
import { chatTurn } from "./chat-socket.ts";
import { type Reply, request } from "./client.ts";
import type { OperationKind } from "./model.ts";

export const PASSWORD = "Granite-Harbour-Lantern-42";

export interface Actor {
  id: string;
  email: string;
  token: string;
}

/** What one experiment's workload works on: its own users, conversations, flag and upload tag. */
export interface Fixture {
  base: string;
  admin: Actor;
  users: Actor[];
  /** One conversation per user, and one more per virtual client for its chat socket turns. */
  conversations: { id: string; owner: Actor }[];
  chatRooms: { id: string; owner: Actor }[];
  flagKey: string;
  tag: string;
}

export interface Ledger {
  attempted: Record<string, number>;
  acknowledged: Record<string, number>;
  /** Status code counts per operation kind and phase (before, during, after the fault). */
  statuses: Record<string, Record<string, number>>;
  /** Acknowledged sign-ins per user id. */
  signIns: Map<string, number>;
  /** Acknowledged flag toggles: the versions they answered. */
  toggleVersions: number[];
  /** Flag rule-set versions each client saw, in order. */
  flagVersionsSeen: Map<number, number[]>;
  /** Acknowledged messages: conversation id -> client_message_ids. */
  messages: Map<string, string[]>;
  /** Chat WebSocket turns: reconnects after a close the client did not ask for, and ids a history frame repeated. */
  chatReconnects: number;
  historyDuplicates: number;
  /** Replies to sent messages that said the circuit was open, and answers from the model (provider openai). */
  circuitOpenReplies: number;
  modelAnswersAfterFault: number;
  /** Acknowledged uploads: document id -> content key; uploads without an answer, to retry after recovery. */
  documents: Map<string, string>;
  unansweredUploads: { key: string; text: string }[];
  /** 500s (an unhandled error) with their request paths and codes, for the report. */
  internalErrors: { kind: string; code: string }[];
}

export function newLedger(): Ledger {
  return {
    attempted: {},
    acknowledged: {},
    statuses: {},
    signIns: new Map(),
    toggleVersions: [],
    flagVersionsSeen: new Map(),
    messages: new Map(),
    chatReconnects: 0,
    historyDuplicates: 0,
    circuitOpenReplies: 0,
    modelAnswersAfterFault: 0,
    documents: new Map(),
    unansweredUploads: [],
    internalErrors: [],
  };
}

export type Phase = "before" | "during" | "after";

/** A text document of a given size, unique to its key, with sentences the chunker and search can work with. */
export function documentText(key: string, bytes = 1_200): string {
  const sentence = `Chaos document ${key} describes the handling of a local fault. `;
  return sentence.repeat(Math.max(1, Math.ceil(bytes / sentence.length)));
}

export async function uploadDocument(fixture: Fixture, key: string, text: string): Promise<Reply> {
  const form = new FormData();
  form.set("file", new File([text], `${key}.txt`, { type: "text/plain" }));
  form.set("title", key);
  form.set("tags", fixture.tag);
  return request(fixture.base, "/api/admin/kb/documents", { token: fixture.admin.token, form, timeoutMs: 60_000 });
}

/** Runs one operation and writes its outcome to the ledger. */
export async function runOperation(
  kind: OperationKind,
  fixture: Fixture,
  ledger: Ledger,
  client: number,
  pick: () => number,
  phase: () => Phase,
): Promise<void> {
  const at = phase();
  ledger.attempted[kind] = (ledger.attempted[kind] ?? 0) + 1;
  const reply = await perform(kind, fixture, ledger, client, pick, at);
  const key = `${kind}:${at}`;
  ledger.statuses[key] ??= {};
  const statuses = ledger.statuses[key] as Record<string, number>;
  statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
  if (reply.status === 500)
    ledger.internalErrors.push({ kind, code: String(reply.json?.code ?? reply.text.slice(0, 60)) });
}

function acknowledge(ledger: Ledger, kind: string): void {
  ledger.acknowledged[kind] = (ledger.acknowledged[kind] ?? 0) + 1;
}

async function perform(
  kind: OperationKind,
  fixture: Fixture,
  ledger: Ledger,
  client: number,
  pick: () => number,
  at: Phase,
): Promise<Reply> {
  const { base } = fixture;
  switch (kind) {
    case "signIn": {
      const user = fixture.users[Math.floor(pick() * fixture.users.length)] as Actor;
      const reply = await request(base, "/api/auth/login", { json: { email: user.email, password: PASSWORD } });
      if (reply.status === 200) {
        acknowledge(ledger, kind);
        ledger.signIns.set(user.id, (ledger.signIns.get(user.id) ?? 0) + 1);
      }
      return reply;
    }
    case "evaluateFlags": {
      const user = fixture.users[client % fixture.users.length] as Actor;
      const reply = await request(base, "/api/flags/evaluate", { token: user.token, json: { context: {} } });
      if (reply.status === 200) {
        acknowledge(ledger, kind);
        const seen = ledger.flagVersionsSeen.get(client) ?? [];
        seen.push(Number(reply.json?.version));
        ledger.flagVersionsSeen.set(client, seen);
      }
      return reply;
    }
    case "toggleFlag": {
      const reply = await request(base, `/api/admin/flags/${encodeURIComponent(fixture.flagKey)}/toggle`, {
        token: fixture.admin.token,
        json: {},
      });
      if (reply.status === 200) {
        acknowledge(ledger, kind);
        ledger.toggleVersions.push(Number(reply.json?.version));
      }
      return reply;
    }
    case "sendMessage": {
      const conversation = fixture.conversations[client % fixture.conversations.length] as Fixture["conversations"][0];
      const clientMessageId = randomUUID();
      const reply = await request(base, `/api/conversations/${conversation.id}/messages`, {
        token: conversation.owner.token,
        json: { content: `What does chaos document ${fixture.tag} describe?`, client_message_id: clientMessageId },
        timeoutMs: 90_000,
      });
      if (reply.status === 201 || reply.status === 200) {
        acknowledge(ledger, kind);
        const list = ledger.messages.get(conversation.id) ?? [];
        list.push(clientMessageId);
        ledger.messages.set(conversation.id, list);
        if (at === "after" && reply.json?.answer?.provider === "openai") ledger.modelAnswersAfterFault++;
      } else if (/circuit open/.test(reply.json?.detail ?? reply.text)) ledger.circuitOpenReplies++;
      return reply;
    }
    case "chatTurn": {
      const conversation = fixture.chatRooms[client % fixture.chatRooms.length] as Fixture["chatRooms"][0];
      const clientMessageId = randomUUID();
      const turn = await chatTurn(base, conversation.id, conversation.owner.token, {
        content: `What does chaos document ${fixture.tag} describe?`,
        clientMessageId,
      });
      ledger.chatReconnects += turn.reconnects;
      ledger.historyDuplicates += turn.duplicatedInHistory.length;
      if (turn.stored) {
        acknowledge(ledger, kind);
        const list = ledger.messages.get(conversation.id) ?? [];
        list.push(clientMessageId);
        ledger.messages.set(conversation.id, list);
      }
      // As a status: 200 answered, an error frame's code as its HTTP status, 0 no answer at all.
      const code = turn.error as keyof typeof problemCodes | undefined;
      const status = turn.answered ? 200 : code && code in problemCodes ? problemCodes[code].status : 0;
      return { status, ms: 0, json: { code: turn.error }, text: "" };
    }
    case "upload":
    case "bigUpload": {
      const key = `${fixture.tag}-${kind === "bigUpload" ? "big" : "doc"}-${randomUUID().slice(0, 12)}`;
      const text = documentText(key, kind === "bigUpload" ? 512 * 1024 : 1_200);
      const reply = await uploadDocument(fixture, key, text);
      if ((reply.status === 202 || reply.status === 200) && reply.json?.id) {
        acknowledge(ledger, kind);
        ledger.documents.set(String(reply.json.id), key);
      } else if (reply.status === 0 || reply.status >= 500) {
        // No answer, or a failure that may have happened after the row was written: the client tries again later.
        ledger.unansweredUploads.push({ key, text });
      }
      return reply;
    }
  }
}
