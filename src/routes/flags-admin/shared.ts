// What every flag admin route shares: the tag, the flag key parameter and publishing a write.
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../app-env.ts";
import { publishCommitted } from "../../flags/publish.ts";
import type { Committed } from "../../flags/store.ts";
import { principalOf } from "../../middleware/auth.ts";

export const tags = ["flags"];
export const KeyParam = z.object({ key: z.string().min(1).describe("The flag key (URL-encoded)") });

/** Publishes a committed write, then answers with its result. */
export async function published<T>(c: Context<AppEnv>, committed: Committed<T>): Promise<T> {
  await publishCommitted(c.env, committed);
  return committed.result;
}

export const actor = (c: Context<AppEnv>) => principalOf(c).userId;
