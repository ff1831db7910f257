import { ApiError } from "../../errors.ts";
import type { IndexSpec } from "./port.ts";

/** Refuses vectors that do not fit the index before they reach the store (pgvector would mix them silently). */
export function assertFits(index: IndexSpec, vectors: Iterable<number[]>): void {
  for (const vector of vectors) {
    if (vector.length !== index.dimensions) {
      throw new ApiError(
        "BAD_ENVIRONMENT",
        `Vector index "${index.name}" is ${index.dimensions}-dimensional (${index.model}) but got a ${vector.length}-dimensional vector: embed with the index's model or rebuild the index.`,
      );
    }
    if (!vector.every(Number.isFinite)) {
      throw new ApiError("BAD_ENVIRONMENT", `A vector for index "${index.name}" holds a NaN or infinite value.`);
    }
  }
}

/** The store already holds this index with another dimension: a model switch without a rebuild. */
export function storedDimensionMismatch(index: IndexSpec, stored: number): ApiError {
  return new ApiError(
    "BAD_ENVIRONMENT",
    `Vector index "${index.name}" already holds ${stored}-dimensional vectors, not ${index.dimensions} (${index.model}): rebuild it under a new name or delete it first.`,
  );
}
