import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env.ts";
import type { Snapshot } from "../src/flags/model.ts";
import { KV_SNAPSHOT_KEY, KV_VERSION_KEY } from "../src/flags/snapshot-cache.ts";
import { sseFrame as frame, type StreamViewer, viewerFromHubRequest, visibleChanges } from "../src/flags/stream.ts";
import { log } from "../src/observability/log.ts";

/** What the change stream sends: the rule-set version a write produced and what it touched. */
export interface FlagChangeEvent {
  version: number;
  at: string;
  /** `userId`: whose override a change is about; kept by the hub to filter streams, never sent. */
  changes: { subject: string; key: string; action: string; userId?: string }[];
}

// Events kept for Last-Event-ID replay; a client further behind gets a `reset` and re-reads everything.
const REPLAY_EVENTS = 500;
const HEARTBEAT_MS = 15_000;
const encoder = new TextEncoder();

/**
 * The one publisher of flag snapshots (one object, named "global"): it writes KV in version order, whoever
 * calls and in whatever order their writes finish, keeps the recent change events and fans each one out to
 * every open `GET /api/flags/stream`, each filtered for its viewer.
 */
export class FlagHub extends DurableObject<Env> {
  private readonly streams = new Map<WritableStreamDefaultWriter<Uint8Array>, StreamViewer>();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  // Publishes and stream openings run one at a time (inTurn).
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Stores a snapshot in KV unless a newer one is there already, then announces its change (if any). True when
   * the snapshot's version is new to the hub: the writes up to it reached the hub with this call, not before.
   */
  publish(snapshot: Snapshot, event?: FlagChangeEvent): Promise<boolean> {
    return this.inTurn(() => this.publishInOrder(snapshot, event));
  }

  /** Resets the object as an eviction with its sockets closed does (POST /api/admin/chaos/evict, for chaos experiments). */
  evict(): void {
    this.ctx.abort("evicted");
  }

  /** The version last written to KV (0 before the first). */
  async publishedVersion(): Promise<number> {
    return (await this.ctx.storage.get<number>("version")) ?? 0;
  }

  /** Runs `work` alone, after the publishes and stream openings queued before it (KV puts are I/O). */
  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async publishInOrder(snapshot: Snapshot, event?: FlagChangeEvent): Promise<boolean> {
    const published = await this.publishedVersion();
    const isNew = snapshot.version > published;
    // An older snapshot is written only to fill an empty KV (it was lost or evicted), never over a newer one.
    if (isNew || !(await this.hasSnapshotInKv())) {
      // Snapshot first, version second: a reader that sees the new version always finds its snapshot.
      await this.env.FLAGS_KV.put(KV_SNAPSHOT_KEY, JSON.stringify(snapshot));
      await this.env.FLAGS_KV.put(KV_VERSION_KEY, String(snapshot.version));
      if (isNew) await this.ctx.storage.put("version", snapshot.version);
    }
    // The change is announced even when a newer snapshot got here first (two writes' publishes crossing) or its
    // own version did (the reconcile cron, or a retry after an eviction cut the first call off): once.
    if (event) await this.announce(event, Math.max(published, snapshot.version));
    return isNew;
  }

  /**
   * Keeps a change for replay (in version order, whenever it arrived) and sends it to every open stream, once. A
   * change older than the newest version goes out without an id: a client's Last-Event-ID never moves back, so
   * its reconnect does not replay what it already has (the change's version is in its data).
   */
  private async announce(event: FlagChangeEvent, newest: number): Promise<void> {
    const key = eventKey(event.version);
    if ((await this.ctx.storage.get(key)) !== undefined) return;
    await this.ctx.storage.put(key, event);
    await this.trim();
    const id = event.version < newest ? undefined : event.version;
    this.broadcast((viewer) => frame("change", visibleChanges(event, viewer), id));
  }

  private async hasSnapshotInKv(): Promise<boolean> {
    return (await this.env.FLAGS_KV.get(KV_VERSION_KEY)) !== null;
  }

  private async trim(): Promise<void> {
    const keys = [...(await this.ctx.storage.list({ prefix: "event:" })).keys()];
    if (keys.length > REPLAY_EVENTS) await this.ctx.storage.delete(keys.slice(0, keys.length - REPLAY_EVENTS));
  }

  /**
   * An SSE stream for the viewer the route named: replay after Last-Event-ID (or a `reset` when too far
   * behind), then live changes.
   */
  override async fetch(request: Request): Promise<Response> {
    const viewer = viewerFromHubRequest(request);
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const lastEventId = Number.parseInt(request.headers.get("last-event-id") ?? "", 10);
    // Between publishes, so a change is either in what is replayed or sent live to the stream, never both or neither.
    await this.inTurn(async () => {
      const version = await this.publishedVersion();
      const first: Uint8Array[] = [encoder.encode("retry: 3000\n\n")];
      if (Number.isFinite(lastEventId) && lastEventId < version) {
        const events = [...(await this.ctx.storage.list<FlagChangeEvent>({ prefix: "event:" })).values()];
        const missed = events.filter((e) => e.version > lastEventId);
        // Replay only when every version after lastEventId is kept (none trimmed, none whose change never reached
        // the hub); otherwise the client must re-read.
        if (missed.length === version - lastEventId && missed.every((e, i) => e.version === lastEventId + 1 + i))
          first.push(...missed.map((e) => frame("change", visibleChanges(e, viewer), e.version)));
        else first.push(frame("reset", { version, reason: "too far behind: re-read every flag" }, version));
      } else {
        first.push(frame("hello", { version }, version));
      }
      for (const chunk of first) void writer.write(chunk).catch(() => this.drop(writer));
      this.streams.set(writer, viewer);
    });
    request.signal?.addEventListener("abort", () => this.drop(writer));
    const keepAlive = encoder.encode(": keep-alive\n\n");
    this.heartbeat ??= setInterval(() => this.broadcast(() => keepAlive), HEARTBEAT_MS);
    return new Response(readable, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform" },
    });
  }

  /** Sends each stream its own chunk (what its viewer may see). */
  private broadcast(chunkFor: (viewer: StreamViewer) => Uint8Array): void {
    for (const [writer, viewer] of this.streams) writer.write(chunkFor(viewer)).catch(() => this.drop(writer));
  }

  private drop(writer: WritableStreamDefaultWriter<Uint8Array>): void {
    if (!this.streams.delete(writer)) return;
    writer.abort().catch(() => undefined);
    if (this.streams.size === 0 && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
    log("debug", "flag stream closed", { open: this.streams.size });
  }
}

// Zero-padded so storage lists events in version order.
const eventKey = (version: number) => `event:${String(version).padStart(16, "0")}`;
