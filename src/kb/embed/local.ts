import type { ModelCallMeter } from "../../costs/model-calls.ts";
import { estimateTokens } from "../chunk.ts";
import { analyze } from "../terms.ts";
import type { Embedder } from "./port.ts";

// The embedder used without OPENAI_API_KEY: no model can be downloaded or bundled, so this is a
// deterministic hashed bag of features (the "hashing trick"). It captures lexical overlap, not meaning.
// Bump LOCAL_MODEL whenever the output changes: indexes record the model they were built with.
export const LOCAL_MODEL = "local-hash-v1";
export const LOCAL_DIMENSIONS = 384;

// How much each feature family contributes; each family is normalised first so long words
// (many character n-grams) do not drown whole-word matches.
const FAMILIES = [
  { prefix: "w", weight: 1.0, features: (terms: string[]) => terms },
  { prefix: "b", weight: 0.5, features: bigrams },
  { prefix: "c", weight: 0.6, features: characterGrams },
] as const;

/** The local embedder; `meter` counts its calls (free: metrics only, docs/costs.md) with estimated tokens. */
export function localEmbedder(meter?: ModelCallMeter): Embedder {
  return {
    model: LOCAL_MODEL,
    dimensions: LOCAL_DIMENSIONS,
    async embed(texts) {
      const started = Date.now();
      const vectors = texts.map(embedText);
      meter?.({
        provider: "local",
        model: LOCAL_MODEL,
        outcome: "ok",
        usage: { promptTokens: texts.reduce((sum, text) => sum + estimateTokens(text), 0), completionTokens: 0 },
        latencyMs: Date.now() - started,
      });
      return vectors;
    },
  };
}

/** A unit vector; the zero vector for a text without index terms (only stopwords or punctuation). */
export function embedText(text: string): number[] {
  const terms = analyze(text);
  const vector = new Float64Array(LOCAL_DIMENSIONS);
  for (const family of FAMILIES) {
    const counts = new Map<string, number>();
    for (const feature of family.features(terms)) counts.set(feature, (counts.get(feature) ?? 0) + 1);
    // Sublinear tf: a word said ten times is not ten times as telling.
    const weights = [...counts].map(([feature, tf]) => [feature, 1 + Math.log(tf)] as const);
    const norm = euclidean(weights.map(([, w]) => w));
    for (const [feature, w] of weights) {
      const hash = hashFeature(`${family.prefix}:${feature}`);
      // A hashed sign makes colliding features cancel out on average instead of always adding up.
      const sign = hash & 0x8000_0000 ? -1 : 1;
      const bucket = hash % LOCAL_DIMENSIONS;
      vector[bucket] = (vector[bucket] as number) + (sign * family.weight * w) / norm;
    }
  }
  const length = euclidean(vector);
  return Array.from(vector, (x) => (length > 0 ? x / length : 0));
}

function euclidean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i] as number) ** 2;
  return Math.sqrt(sum);
}

function bigrams(terms: string[]): string[] {
  return terms.slice(1).map((term, i) => `${terms[i]} ${term}`);
}

/** Character 3- to 5-grams of each term with boundary marks, so typos and inflections still overlap. */
function characterGrams(terms: string[]): string[] {
  const grams: string[] = [];
  for (const term of terms) {
    const marked = `<${term}>`;
    for (let n = 3; n <= 5; n++) {
      for (let i = 0; i + n <= marked.length; i++) grams.push(marked.slice(i, i + n));
    }
  }
  return grams;
}

/** FNV-1a, then murmur3's finaliser so every output bit depends on every input bit. */
function hashFeature(feature: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < feature.length; i++) {
    h ^= feature.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
