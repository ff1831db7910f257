// Issue #15: the flag hub evicted between writes: the published version never goes back, a stream reconnecting
// with Last-Event-ID gets every later change once, KV holds the newest snapshot, and a change that reached the
// hub after a newer one is still stored and streamed.
import { evictDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Snapshot } from "../../src/flags/model.ts";
import { flagHub } from "../../src/flags/publish.ts";
import type { FlagChangeEvent } from "../../workers/flag-hub.ts";
import { deferred, resetByEvict } from "./eviction-helpers.ts";
import {
  createFlag,
  type EventReader,
  flagPath,
  kvState,
  openStream,
  ruleSetVersion,
  toggleFlag,
  uniqueFlagKey,
  workerEnv,
} from "./flag-helpers.ts";
import { call } from "./harness.ts";
import { db, signedInUser, type TestUser } from "./identity-helpers.ts";
import { addIndexedDocument } from "./kb-helpers.ts";

const run = crypto.randomUUID().slice(0, 8);
const WORD = `vellorine${run.replace(/\d/g, "")}`;
// An eviction through evictDurableObject waits up to 15 s for what is in flight.
const EVICTION_TEST_MS = 60_000;

let admin: TestUser;
let viewer: TestUser;

beforeAll(async () => {
  [admin, viewer] = await Promise.all([signedInUser("admin"), signedInUser("viewer")]);
  await addIndexedDocument(admin.access, {
    title: "Meningitis",
    sourceType: `eviction-${run}`,
    text: `Bacterial meningitis ${WORD} is treated with ceftriaxone 2 g intravenously at once. Give dexamethasone before or with the first dose.`,
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("FlagHub evicted mid-session", () => {
  const hub = () => flagHub(workerEnv);
  const change = (e: { event: string; id?: string; data: unknown }) => [
    e.event,
    e.id,
    (e.data as FlagChangeEvent).version,
  ];
  const closeAll = (...streams: EventReader[]) => Promise.all(streams.map((s) => s.close()));

  // An open stream is a request in flight: evictDurableObject waits for it (and gives up after 30 s), so that
  // variant evicts once its client has gone; evict() cuts the stream, as a deploy or crash would.
  it.each([
    ["evictDurableObject, after the stream's client left", false],
    ["evict() (ctx.abort), cutting the stream", true],
  ] as const)(
    "evicted between writes (%s): the version never goes back, a reconnecting stream gets every change after its Last-Event-ID once, KV gets the newest snapshot",
    async (_how, cutsStream) => {
      const key = uniqueFlagKey("evicted");
      await createFlag(admin.access, { key, enabled: false });
      const v0 = await ruleSetVersion();
      const stream = await openStream(viewer.access);
      try {
        expect(await stream.next()).toEqual({ event: "hello", id: String(v0), data: { version: v0 } });
        await toggleFlag(admin.access, key, true);
        expect(change(await stream.next())).toEqual(["change", String(v0 + 1), v0 + 1]);

        if (cutsStream) {
          await resetByEvict(hub());
          await expect(stream.next()).rejects.toThrow(/the stream ended/);
        } else {
          await stream.close();
          await evictDurableObject(hub());
        }
        expect(await hub().publishedVersion()).toBe(v0 + 1);

        await toggleFlag(admin.access, key, false);
        await toggleFlag(admin.access, key, true);
        expect(await hub().publishedVersion()).toBe(v0 + 3);
        const kv = await kvState();
        expect([kv.version, kv.snapshot?.version]).toEqual([v0 + 3, v0 + 3]);
      } finally {
        await stream.close();
      }

      const resumed = await openStream(viewer.access, { "last-event-id": String(v0 + 1) });
      try {
        expect(change(await resumed.next())).toEqual(["change", String(v0 + 2), v0 + 2]);
        expect(change(await resumed.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
        // The next event is the next write's: nothing was sent twice.
        await toggleFlag(admin.access, key, false);
        expect(change(await resumed.next())).toEqual(["change", String(v0 + 4), v0 + 4]);
      } finally {
        await resumed.close();
      }
    },
    EVICTION_TEST_MS,
  );

  it("announces a write whose publish a newer write's overtook: kept for replay in version order, sent live once without moving Last-Event-ID back, while KV keeps the newer snapshot", async () => {
    const key = uniqueFlagKey("crossing");
    await createFlag(admin.access, { key, enabled: false });
    const v0 = await ruleSetVersion();
    const live = await openStream(viewer.access);
    try {
      expect((await live.next()).id).toBe(String(v0));
      // The first write's hand-off to the hub is held until the second write has been published.
      const reached = deferred<Snapshot>();
      const release = deferred<void>();
      const holding = {
        idFromName: (name: string) => workerEnv.FLAG_HUB.idFromName(name),
        get: () => ({
          publish: async (snapshot: Snapshot, event?: FlagChangeEvent) => {
            reached.resolve(snapshot);
            await release.promise;
            return hub().publish(snapshot, event);
          },
        }),
      };
      const first = call("POST", flagPath(key, "/toggle"), {
        token: admin.access,
        json: { enabled: true },
        overrides: { FLAG_HUB: holding },
      });
      expect((await reached.promise).version).toBe(v0 + 1);
      await toggleFlag(admin.access, key, false);
      expect(change(await live.next())).toEqual(["change", String(v0 + 2), v0 + 2]);

      release.resolve();
      expect((await first).status).toBe(200);
      const late = await live.next();
      expect(late).toEqual({
        event: "change",
        data: { version: v0 + 1, at: expect.any(String), changes: [{ subject: "flag", key, action: "toggled" }] },
      });
      expect(await hub().publishedVersion()).toBe(v0 + 2);
      const kv = await kvState();
      expect([kv.version, kv.snapshot?.version]).toEqual([v0 + 2, v0 + 2]);
      expect(kv.snapshot?.flags.find((f) => f.key === key)?.enabled).toBe(false);

      // A client that saw v0 reconnects: both changes, in version order, once each.
      const replay = await openStream(viewer.access, { "last-event-id": String(v0) });
      try {
        expect(change(await replay.next())).toEqual(["change", String(v0 + 1), v0 + 1]);
        expect(change(await replay.next())).toEqual(["change", String(v0 + 2), v0 + 2]);
        await toggleFlag(admin.access, key, true);
        expect(change(await replay.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
        expect(change(await live.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
      } finally {
        await replay.close();
      }
    } finally {
      await live.close();
    }
  });

  it("announces a change whose version reached the hub without it (a call an eviction cut off, then retried), once", async () => {
    const key = uniqueFlagKey("retried");
    await createFlag(admin.access, { key, enabled: false });
    const v0 = await ruleSetVersion();
    const live = await openStream(viewer.access);
    try {
      expect((await live.next()).id).toBe(String(v0));
      // The first call is cut off after the hub stored the snapshot's version, before the change: as ctx.abort
      // would, it rejects, and the writer retries the whole publish.
      const calls: (FlagChangeEvent | undefined)[] = [];
      const cutOnce = {
        idFromName: (name: string) => workerEnv.FLAG_HUB.idFromName(name),
        get: () => ({
          publish: async (snapshot: Snapshot, event?: FlagChangeEvent) => {
            calls.push(event);
            if (calls.length > 1) return hub().publish(snapshot, event);
            await hub().publish(snapshot);
            throw new Error("evicted");
          },
        }),
      };
      const toggled = await call("POST", flagPath(key, "/toggle"), {
        token: admin.access,
        json: { enabled: true },
        overrides: { FLAG_HUB: cutOnce },
      });
      expect(toggled.status).toBe(200);
      expect(calls).toHaveLength(2);
      expect(change(await live.next())).toEqual(["change", String(v0 + 1), v0 + 1]);

      // A third hand-off of the same change (another retry) is not announced again.
      const snapshot = (await kvState()).snapshot as Snapshot;
      expect(await hub().publish(snapshot, calls[1])).toBe(false);
      await toggleFlag(admin.access, key, false);
      expect(change(await live.next())).toEqual(["change", String(v0 + 2), v0 + 2]);

      const replay = await openStream(viewer.access, { "last-event-id": String(v0) });
      try {
        expect(change(await replay.next())).toEqual(["change", String(v0 + 1), v0 + 1]);
        expect(change(await replay.next())).toEqual(["change", String(v0 + 2), v0 + 2]);
      } finally {
        await replay.close();
      }
    } finally {
      await closeAll(live);
    }
  });

  it("sends reset, not a replay with a hole, when a version after Last-Event-ID has no change kept", async () => {
    const key = uniqueFlagKey("hole");
    await createFlag(admin.access, { key, enabled: false });
    const v0 = await ruleSetVersion();
    await toggleFlag(admin.access, key, true);
    // A write whose hand-off was lost (the reconcile cron republishes the snapshot, never the change), then another.
    await db.execute(sql`update flag_state set version = version + 1 where id = 1`);
    await toggleFlag(admin.access, key, false);
    expect(await hub().publishedVersion()).toBe(v0 + 3);

    const behind = await openStream(viewer.access, { "last-event-id": String(v0) });
    const past = await openStream(viewer.access, { "last-event-id": String(v0 + 2) });
    try {
      expect(await behind.next()).toMatchObject({ event: "reset", id: String(v0 + 3), data: { version: v0 + 3 } });
      // After the hole everything is kept: replayed.
      expect(change(await past.next())).toEqual(["change", String(v0 + 3), v0 + 3]);
    } finally {
      await closeAll(behind, past);
    }
  });
});
