import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { documents } from "../../src/db/schema/kb.ts";
import { ingestDocument } from "../../src/kb/ingest.ts";
import { call } from "./harness.ts";
import { config, db } from "./identity-helpers.ts";

/** Uploads bytes as a multipart form, the way a browser or curl -F would. */
export async function upload(
  token: string,
  file: { bytes: Uint8Array | string; name: string; type?: string },
  fields: Record<string, string> = {},
  overrides: Record<string, unknown> = {},
) {
  const form = new FormData();
  form.set("file", new File([file.bytes], file.name, { type: file.type ?? "application/octet-stream" }));
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  return call("POST", "/api/admin/kb/documents", { body: form, token, overrides });
}

export const documentRow = async (id: string) => (await db.select().from(documents).where(eq(documents.id, id)))[0];

/** Runs the ingestion of a document's next generation now, as the queue consumer would. */
export async function ingestNow(id: string, attempt = 1) {
  const row = await documentRow(id);
  return ingestDocument(env, config, { documentId: id, generation: (row?.activeGeneration ?? 0) + 1 }, attempt);
}

/** Waits for the real queue consumer to finish a document. */
export async function untilSettled(id: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await documentRow(id);
    if (!row || row.status === "ready" || row.status === "failed") return row;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`document ${id} did not settle in ${timeoutMs} ms`);
}

// Uploads that queue nothing: the test indexes when it wants to (no race with the real consumer).
const noQueue = { KB_INGEST: { send: async () => {}, sendBatch: async () => {} } };

/** Uploads a text document and indexes it at once, as the consumer would; returns its id. */
export async function addIndexedDocument(
  adminToken: string,
  document: { title: string; text: string; sourceType: string; tags?: string },
): Promise<string> {
  const res = await upload(
    adminToken,
    { bytes: document.text, name: `${document.title}.txt`, type: "text/plain" },
    { title: document.title, source_type: document.sourceType, ...(document.tags ? { tags: document.tags } : {}) },
    noQueue,
  );
  if (res.status !== 202) throw new Error(`upload failed: ${JSON.stringify(res.body)}`);
  const outcome = await ingestNow(res.body.id);
  if (outcome !== "indexed") throw new Error(`indexing failed: ${outcome}`);
  return res.body.id;
}
