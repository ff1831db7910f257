import type { MetricEvent } from "../metrics/record.ts";

/**
 * Where the clock of kb_document_ready_seconds starts for one ingestion: the reindex, retry, index rebuild or
 * stuck-document requeue that queued it (carried in its message), else the document's upload or import.
 */
export const readyClockStart = (document: { createdAt: Date }, requestedAt: string | undefined): Date =>
  requestedAt ? new Date(requestedAt) : document.createdAt;

/** The kb_document_ready_seconds sample of a document that has just reached its final state. */
export const documentReadyTime = (since: Date, outcome: "ready" | "failed"): MetricEvent => ({
  name: "kb_document_ready_seconds",
  labels: { outcome },
  value: Math.max(0, (Date.now() - since.getTime()) / 1000),
});
