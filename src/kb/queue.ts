import { z } from "zod";
import type { Env } from "../env.ts";
import { loadConfig } from "../env.ts";
import { ingestDocument } from "./ingest.ts";

const IngestPayload = z.object({ documentId: z.uuid(), generation: z.number().int().positive() });

/** The kb.ingest queue handler: a malformed message fails loudly (and ends in the dead-letter queue). */
export async function handleIngestMessage(payload: unknown, env: Env, message: Message<unknown>): Promise<void> {
  const job = IngestPayload.parse(payload);
  const config = loadConfig(env);
  if (!config.ok) throw new Error("bad environment");
  await ingestDocument(env, config.config, job, message.attempts);
}
