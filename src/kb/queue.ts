import { z } from "zod";
import type { Env } from "../env.ts";
import { loadConfig } from "../env.ts";
import type { HandlerResult } from "../jobs/queue.ts";
import { ingestDocument } from "./ingest.ts";

// Exported for the contract tests (test/contract/): the message the consumer parses is the one the pact pins.
export const IngestPayload = z.object({
  documentId: z.uuid(),
  generation: z.number().int().positive(),
  // Absent from upload and import messages (the document's created_at is their request time).
  requestedAt: z.iso.datetime().optional(),
});

/**
 * The kb.ingest queue handler: a malformed message fails loudly (and ends in the dead-letter queue);
 * a document failed for good has had its message moved to the dead-letter queue by ingestDocument.
 */
export async function handleIngestMessage(
  payload: unknown,
  env: Env,
  message: Message<unknown>,
): Promise<HandlerResult> {
  const job = IngestPayload.parse(payload);
  const config = loadConfig(env);
  if (!config.ok) throw new Error("bad environment");
  const outcome = await ingestDocument(env, config.config, job, message.attempts);
  return outcome === "failed" ? "dead_letter" : "done";
}
