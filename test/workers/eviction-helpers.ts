// What the Durable Object eviction suites share: the two ways to evict, and reading back what is stored.
import { evictDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { expect } from "vitest";
import { queryRows } from "../../src/db/client.ts";
import { call, type SocketMessage } from "./harness.ts";
import { db, type TestUser } from "./identity-helpers.ts";

export type Stub = { evict(): void | Promise<void> };

/** The object's own evict() (ctx.abort): the call itself is rejected, which is the reset having happened. */
export async function resetByEvict(stub: Stub): Promise<void> {
  await expect(Promise.resolve().then(() => stub.evict())).rejects.toThrow(/evicted/);
}

export const evictions = [
  [
    "evictDurableObject, sockets closed",
    (stub: DurableObjectStub & Stub) => evictDurableObject(stub, { webSockets: "close" }),
  ],
  ["evict() (ctx.abort)", resetByEvict],
] as const;

export function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Every row of a conversation, inactive versions included, in thread order. */
export const storedRows = (conversationId: string) =>
  queryRows<{
    id: string;
    role: string;
    client_message_id: string | null;
    reply_status: string | null;
    active: boolean;
  }>(
    db,
    sql`select id, role, client_message_id, reply_status, active from messages
         where conversation_id = ${conversationId} order by turn, role desc, version`,
  );

/** The visible thread, as GET /api/conversations/{id}/messages shows it. */
export async function thread(owner: TestUser, conversationId: string): Promise<SocketMessage[]> {
  const res = await call("GET", `/api/conversations/${conversationId}/messages`, { token: owner.access });
  expect(res.status).toBe(200);
  expect(res.body.total).toBe(res.body.items.length);
  return res.body.items;
}
