import { z } from "@hono/zod-openapi";

// Invisible characters that reorder or hide text (bidi overrides and isolates, zero-width space, word
// joiners, directional marks, BOM) and C0/C1 controls: with them two names can look identical. The
// zero-width (non-)joiners U+200C/U+200D stay allowed: Persian, Indic scripts and emoji need them.
const SPOOFING_CHARACTER = /[\p{Cc}\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/u;

const codePoint = (ch: string) => `U+${(ch.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`;

/** A name people read in lists (a user's full name, an API key's name): trimmed, bounded, nothing hidden. */
export const displayName = (maxLength: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(maxLength)
    .superRefine((name, ctx) => {
      const hidden = SPOOFING_CHARACTER.exec(name)?.[0];
      if (hidden) {
        ctx.addIssue({
          code: "custom",
          message: `must not contain invisible or control characters (${codePoint(hidden)})`,
        });
      }
    });
