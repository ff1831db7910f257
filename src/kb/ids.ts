import { sha256Hex } from "../auth/crypto.ts";

/**
 * The id of chunk `index` of a document's generation, derived rather than random, so a redelivered
 * message writes the same rows again instead of duplicates (UUID layout, version 8: custom).
 */
export async function chunkId(documentId: string, generation: number, index: number): Promise<string> {
  const hex = await sha256Hex(`${documentId}:${generation}:${index}`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
