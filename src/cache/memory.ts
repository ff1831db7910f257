// The isolate-memory tier: a least-recently-used map with an expiry per entry. Pure: the caller passes
// the time, so tests need no clock. Values are JSON text, so no caller can mutate what another reads.

interface Entry {
  json: string;
  expiresAt: number;
}

export class MemoryTier {
  readonly maxEntries: number;
  private readonly entries = new Map<string, Entry>();

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The JSON stored under key, or undefined when absent or expired (an expired entry is dropped). */
  get(key: string, now: number): string | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= now) return undefined;
    // Re-inserted: a Map iterates in insertion order, so the first key is the least recently used.
    this.entries.set(key, entry);
    return entry.json;
  }

  set(key: string, json: string, ttlMs: number, now: number): void {
    this.entries.delete(key);
    this.entries.set(key, { json, expiresAt: now + ttlMs });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }
}
