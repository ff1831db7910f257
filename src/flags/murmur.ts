// MurmurHash3 (x86, 32-bit) exactly as the Unleash reference client computes it: every UTF-16 code unit is
// masked to its low byte (`charCodeAt(i) & 0xff`), so non-ASCII ids land in the same bucket as in every Unleash SDK.

export const STRATEGY_SEED = 0;
export const VARIANT_SEED = 86028157;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** The hash of `prefix + key`, read in place so the hot path never builds the joined string. */
export function murmur3(key: string, seed = 0, prefix = ""): number {
  const split = prefix.length;
  const length = split + key.length;
  let h = seed | 0;
  let k = 0;
  for (let i = 0; i < length; i++) {
    const byte = (i < split ? prefix.charCodeAt(i) : key.charCodeAt(i - split)) & 0xff;
    k |= byte << ((i & 3) << 3);
    if ((i & 3) === 3) {
      h ^= scramble(k);
      h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
      k = 0;
    }
  }
  if (length & 3) h ^= scramble(k);
  h ^= length;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function scramble(k: number): number {
  const mixed = Math.imul(k, C1);
  return Math.imul((mixed << 15) | (mixed >>> 17), C2);
}

/** Unleash's bucket of `id` within `groupId`: 1..normalizer. */
export function normalizedValue(id: string, groupId: string, normalizer: number, seed = STRATEGY_SEED): number {
  return (murmur3(id, seed, `${groupId}:`) % normalizer) + 1;
}
