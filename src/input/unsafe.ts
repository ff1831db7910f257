// What no stored or evaluated input may carry, whatever the route: checked once, before any handler reads it.

import type { FieldError } from "../errors.ts";

/** Deepest nesting accepted in any JSON input; far beyond real documents, far below a stack overflow. */
export const MAX_JSON_DEPTH = 64;

/** Postgres cannot store U+0000 in text or jsonb, so it is refused before it gets that far. */
export const hasNul = (text: string): boolean => text.includes("\u0000");

export const NUL_MESSAGE = "must not contain the NUL character (U+0000)";

/**
 * The first thing in a parsed JSON value that must be refused (a NUL in a string or a key, nesting deeper
 * than MAX_JSON_DEPTH), named as a field below `target` ("body.messages.3.content"); undefined when clean.
 * Iterative, so the walk itself cannot overflow the stack.
 */
export function findUnsafeJson(value: unknown, target: string): FieldError | undefined {
  const pending: { value: unknown; field: string; depth: number }[] = [{ value, field: target, depth: 0 }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { value, field, depth } = next;
    if (typeof value === "string") {
      if (hasNul(value)) return { field, message: NUL_MESSAGE };
      continue;
    }
    if (value === null || typeof value !== "object") continue;
    if (depth >= MAX_JSON_DEPTH) return { field, message: `must not be nested deeper than ${MAX_JSON_DEPTH} levels` };
    for (const [key, child] of Object.entries(value)) {
      if (hasNul(key)) return { field, message: `has a key that ${NUL_MESSAGE}` };
      pending.push({ value: child, field: `${field}.${key}`, depth: depth + 1 });
    }
  }
  return undefined;
}
