// Invariants, checked after recovery against what the server acknowledged during the experiment (the ledger).
// Each returns whether it held, a one-line detail, and how many acknowledged operations it found lost.
import { setTimeout as sleep } from "node:timers/promises";
import { chatHistory } from "./chat-socket.ts";
import { request } from "./client.ts";
import type { InvariantName } from "./model.ts";
import type { Fixture, Ledger } from "./workload.ts";

export interface InvariantResult {
  name: InvariantName;
  ok: boolean;
  detail: string;
  lost: number;
}

const FINAL = new Set(["ready", "failed"]);

/** Every page of a page-numbered list. */
async function listAll(fixture: Fixture, path: string, token: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  for (let page = 1; ; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const reply = await request(fixture.base, `${path}${sep}page=${page}&page_size=100`, { token });
    if (reply.status !== 200) throw new Error(`GET ${path.split("?")[0]}: ${reply.status}`);
    items.push(...(reply.json.items as Record<string, unknown>[]));
    if (items.length >= Number(reply.json.total) || reply.json.items.length === 0) return items;
  }
}

/** The documents' states, once every acknowledged one is final or the deadline passed. */
export async function settleDocuments(
  fixture: Fixture,
  ids: string[],
  deadlineMs: number,
): Promise<Map<string, { status: string; error: string | null } | undefined>> {
  const states = new Map<string, { status: string; error: string | null } | undefined>();
  const deadline = Date.now() + deadlineMs;
  let pending = ids;
  while (pending.length > 0) {
    const next: string[] = [];
    for (const id of pending) {
      const reply = await request(fixture.base, `/api/admin/kb/documents/${id}`, { token: fixture.admin.token });
      if (reply.status === 404) states.set(id, undefined);
      else if (reply.status === 200) {
        states.set(id, { status: reply.json.status, error: reply.json.error ?? null });
        if (!FINAL.has(reply.json.status)) next.push(id);
      } else next.push(id);
    }
    pending = next;
    if (pending.length === 0 || Date.now() > deadline) break;
    await sleep(2_000);
  }
  return states;
}

export async function checkInvariant(
  name: InvariantName,
  fixture: Fixture,
  ledger: Ledger,
  documents: Map<string, { status: string; error: string | null } | undefined>,
  requeued: number,
): Promise<InvariantResult> {
  const result = (ok: boolean, detail: string, lost = 0): InvariantResult => ({ name, ok, detail, lost });
  const admin = fixture.admin.token;
  switch (name) {
    case "uploads-settle": {
      const missing = [...documents].filter(([, state]) => state === undefined).length;
      const stuck = [...documents].filter(([, s]) => s && !FINAL.has(s.status)).length;
      const failedWithoutReason = [...documents].filter(([, s]) => s?.status === "failed" && !s.error).length;
      const ready = [...documents].filter(([, s]) => s?.status === "ready").length;
      const failed = [...documents].filter(([, s]) => s?.status === "failed").length;
      return result(
        missing + stuck + failedWithoutReason === 0,
        `${documents.size} acknowledged: ${ready} ready, ${failed} failed with a reason, ${stuck} stuck, ` +
          `${missing} missing, ${failedWithoutReason} failed without a reason`,
        missing,
      );
    }
    case "uploads-unique": {
      const items = await listAll(fixture, `/api/admin/kb/documents?tag=${encodeURIComponent(fixture.tag)}`, admin);
      const byTitle = new Map<string, number>();
      for (const item of items) byTitle.set(String(item.title), (byTitle.get(String(item.title)) ?? 0) + 1);
      const duplicated = [...byTitle].filter(([, n]) => n > 1).length;
      const keys = new Set(ledger.documents.values());
      const absent = [...keys].filter((key) => !byTitle.has(key)).length;
      return result(
        duplicated === 0 && absent === 0,
        `${items.length} documents under the run's tag for ${keys.size} acknowledged contents ` +
          `(${ledger.unansweredUploads.length} unanswered uploads retried): ${duplicated} duplicated, ${absent} absent`,
        absent,
      );
    }
    case "messages-kept":
    case "thread-replay": {
      // A client that reconnects reads the thread again: every acknowledged question once, answers after them.
      let expected = 0;
      let lost = 0;
      let repeated = 0;
      for (const conversation of [...fixture.conversations, ...fixture.chatRooms]) {
        const acked = ledger.messages.get(conversation.id) ?? [];
        expected += acked.length;
        const items = await listAll(
          fixture,
          `/api/conversations/${conversation.id}/messages`,
          conversation.owner.token,
        );
        const counts = new Map<string, number>();
        for (const item of items) {
          if (item.role !== "user") continue;
          const id = String(item.client_message_id);
          counts.set(id, (counts.get(id) ?? 0) + 1);
        }
        for (const id of acked) {
          const n = counts.get(id) ?? 0;
          if (n === 0) lost++;
          if (n > 1) repeated++;
        }
        if (name === "thread-replay") repeated += [...counts.values()].filter((n) => n > 1).length;
      }
      const what = name === "messages-kept" ? "acknowledged messages" : "turns replayed on reconnect";
      return result(lost + repeated === 0, `${expected} ${what}: ${lost} lost, ${repeated} seen more than once`, lost);
    }
    case "audit-kept": {
      let lost = 0;
      let logins = 0;
      for (const [userId, acked] of ledger.signIns) {
        logins += acked;
        const reply = await request(
          fixture.base,
          `/api/admin/audit?action=auth.login&outcome=success&actor_id=${userId}&limit=1`,
          { token: admin },
        );
        lost += Math.max(0, acked - Number(reply.json?.total ?? 0));
      }
      const reply = await request(
        fixture.base,
        `/api/admin/audit?action=admin.flag.toggled&target_id=${encodeURIComponent(fixture.flagKey)}&limit=1`,
        { token: admin },
      );
      lost += Math.max(0, ledger.toggleVersions.length - Number(reply.json?.total ?? 0));
      return result(
        lost === 0,
        `${logins} acknowledged sign-ins and ${ledger.toggleVersions.length} acknowledged flag toggles: ${lost} without their audit row`,
        lost,
      );
    }
    case "audit-chain": {
      const reply = await request(fixture.base, "/api/admin/audit/verify", { token: admin, timeoutMs: 120_000 });
      return result(
        reply.status === 200 && reply.json?.ok === true,
        `GET /api/admin/audit/verify: ${reply.status} ok=${reply.json?.ok} rows_checked=${reply.json?.rows_checked}`,
      );
    }
    case "flag-versions-monotonic": {
      let backwards = 0;
      for (const seen of ledger.flagVersionsSeen.values()) {
        for (let i = 1; i < seen.length; i++) if ((seen[i] as number) < (seen[i - 1] as number)) backwards++;
      }
      const acked = ledger.toggleVersions;
      const distinct = new Set(acked).size;
      const flag = await request(fixture.base, `/api/admin/flags/${encodeURIComponent(fixture.flagKey)}`, {
        token: admin,
      });
      const finalVersion = Number(flag.json?.version ?? 0);
      const maxAcked = acked.length ? Math.max(...acked) : 0;
      const evaluations = [...ledger.flagVersionsSeen.values()].reduce((n, s) => n + s.length, 0);
      return result(
        backwards === 0 && distinct === acked.length && finalVersion >= maxAcked,
        `${evaluations} evaluations, ${backwards} saw the rule-set version go back; ${acked.length} toggles ` +
          `acknowledged with ${distinct} distinct versions; the flag is at version ${finalVersion} (highest acknowledged ${maxAcked})`,
        Math.max(0, maxAcked > finalVersion ? 1 : 0),
      );
    }
    case "no-500": {
      const codes = new Map<string, number>();
      for (const e of ledger.internalErrors)
        codes.set(`${e.kind} ${e.code}`, (codes.get(`${e.kind} ${e.code}`) ?? 0) + 1);
      return result(
        ledger.internalErrors.length === 0,
        ledger.internalErrors.length === 0
          ? "no 500: every failure was a 502, 503 or 504 naming its cause"
          : `500s: ${[...codes].map(([k, n]) => `${k} x${n}`).join(", ")}`,
      );
    }
    case "circuit-opens-and-closes":
      return result(
        ledger.circuitOpenReplies > 0 && ledger.modelAnswersAfterFault > 0,
        `${ledger.circuitOpenReplies} answers refused at once with the circuit open; ` +
          `${ledger.modelAnswersAfterFault} answered by the model after the fault (circuit closed)`,
      );
    case "chat-reconnect-replay": {
      // Each conversation read again over a new socket: its history frame lists each stored message once, and
      // only messages the thread holds.
      let repeated = ledger.historyDuplicates;
      let unknown = 0;
      for (const conversation of fixture.chatRooms) {
        const history = await chatHistory(fixture.base, conversation.id, conversation.owner.token);
        if (!history) throw new Error(`no history frame for conversation ${conversation.id}`);
        const thread = await listAll(
          fixture,
          `/api/conversations/${conversation.id}/messages`,
          conversation.owner.token,
        );
        const stored = new Set(thread.map((m) => String(m.id)));
        const ids = history.map((m) => m.id);
        repeated += ids.filter((id, i) => ids.indexOf(id) !== i).length;
        unknown += ids.filter((id) => !stored.has(id)).length;
      }
      return result(
        ledger.chatReconnects > 0 && repeated + unknown === 0,
        `${ledger.chatReconnects} reconnects after a closed socket; history frames listed ${repeated} messages ` +
          `more than once and ${unknown} the thread does not hold`,
      );
    }
    case "stuck-documents-requeued": {
      const stuck = [...documents.values()].filter((s) => s && !FINAL.has(s.status)).length;
      return result(
        stuck === 0,
        `kb-requeue-stuck fired ${requeued} times after recovery; ${stuck} documents still not final`,
      );
    }
  }
}
