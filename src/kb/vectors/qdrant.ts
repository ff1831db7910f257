import { QdrantClient, QdrantClientTimeoutError, withHeaders } from "@qdrant/js-client-rest";
import type { Config } from "../../config.ts";
import { UpstreamError } from "../../errors.ts";
import { traceHeaders } from "../../observability/outbound.ts";
import { assertFits, storedDimensionMismatch } from "./dimensions.ts";
import type { IndexSpec, VectorStore } from "./port.ts";

// Keeps each upsert body to a few MB at 1536 dimensions.
const POINTS_PER_UPSERT = 256;

type QdrantConfig = Pick<Config, "QDRANT_URL" | "QDRANT_API_KEY" | "OUTBOUND_TIMEOUT_MS">;

/**
 * Vectors in Qdrant: one collection per index (kb_<name>), cosine distance, payload {document_id}.
 * The client takes no custom fetch, so trace headers go through its withHeaders hook instead.
 */
export function qdrantStore(config: QdrantConfig): VectorStore {
  const timeoutMs = config.OUTBOUND_TIMEOUT_MS;
  const client = new QdrantClient({
    url: config.QDRANT_URL,
    apiKey: config.QDRANT_API_KEY,
    timeout: timeoutMs,
    // The version probe is a fire-and-forget request on every construction; Workers construct per request.
    checkCompatibility: false,
  });
  // withHeaders applies while the client builds the request, which it does synchronously within `work`.
  const call = <T>(action: string, work: () => Promise<T>): Promise<T> =>
    withHeaders(traceHeaders(), work).catch((error: unknown) => {
      throw qdrantError(action, error, timeoutMs);
    });
  // Deleting from or searching an index that was never created finds nothing, as with pgvector.
  const unlessMissing = <T>(request: Promise<T>, fallback: T): Promise<T> =>
    request.catch((error: unknown) => {
      if (httpStatus(error) === 404) return fallback;
      throw error;
    });

  return {
    backend: "qdrant",

    async ensureIndex(index) {
      const name = collectionName(index);
      const { exists } = await call("check the collection", () => client.collectionExists(name));
      if (!exists) {
        await call("create the collection", () =>
          client.createCollection(name, { vectors: { size: index.dimensions, distance: "Cosine" } }),
        ).catch((error: unknown) => {
          // Another worker created it first; its size is checked below like any existing collection's.
          if (httpStatus(error) !== 409) throw error;
        });
      }
      const info = await call("read the collection", () => client.getCollection(name));
      const size = storedSize(info.config.params.vectors);
      if (size !== index.dimensions) throw storedDimensionMismatch(index, size ?? 0);
      // Filtering by document (query, deleteDocument) needs a keyword index on the payload field.
      if (!info.payload_schema.document_id) {
        await call("index document_id", () =>
          client.createPayloadIndex(name, { field_name: "document_id", field_schema: "keyword", wait: true }),
        );
      }
    },

    async upsert(index, items) {
      assertFits(
        index,
        items.map((item) => item.vector),
      );
      for (let i = 0; i < items.length; i += POINTS_PER_UPSERT) {
        const points = items.slice(i, i + POINTS_PER_UPSERT).map((item) => ({
          id: item.chunkId,
          vector: item.vector,
          payload: { document_id: item.documentId },
        }));
        await call("upsert points", () => client.upsert(collectionName(index), { wait: true, points }));
      }
    },

    async deleteChunks(index, chunkIds) {
      if (chunkIds.length === 0) return;
      await unlessMissing(
        call("delete points", () => client.delete(collectionName(index), { wait: true, points: chunkIds })),
        undefined,
      );
    },

    async deleteDocument(index, documentId) {
      const filter = { must: [{ key: "document_id", match: { value: documentId } }] };
      await unlessMissing(
        call("delete a document's points", () => client.delete(collectionName(index), { wait: true, filter })),
        undefined,
      );
    },

    async dropIndex(index) {
      await unlessMissing(
        call("delete a collection", () => client.deleteCollection(collectionName(index))),
        undefined,
      );
    },

    async query(index, vector, { topK, documentIds }) {
      assertFits(index, [vector]);
      if (topK < 1 || documentIds?.length === 0) return [];
      const filter = documentIds ? { must: [{ key: "document_id", match: { any: documentIds } }] } : undefined;
      const result = await unlessMissing(
        call("query points", () =>
          client.query(collectionName(index), {
            query: vector,
            limit: Math.floor(topK),
            with_payload: true,
            ...(filter ? { filter } : {}),
          }),
        ),
        { points: [] },
      );
      return result.points.map((point) => ({
        chunkId: String(point.id),
        documentId: String(point.payload?.document_id),
        score: point.score,
      }));
    },
  };
}

const collectionName = (index: IndexSpec) => `kb_${index.name}`;

/** The HTTP status Qdrant answered with, behind an UpstreamError. */
const httpStatus = (error: unknown): unknown => (error as { cause?: { status?: unknown } }).cause?.status;

/** The size of the collection's single unnamed vector, if that is what it has. */
function storedSize(vectors: unknown): number | undefined {
  const size = (vectors as { size?: unknown } | undefined)?.size;
  return typeof size === "number" ? size : undefined;
}

/** Maps the client's errors to an UpstreamError naming Qdrant; the HTTP error stays as the cause. */
function qdrantError(action: string, error: unknown, timeoutMs: number): UpstreamError {
  if (error instanceof QdrantClientTimeoutError) {
    return new UpstreamError("UPSTREAM_TIMEOUT", `Qdrant did not answer within ${timeoutMs} ms (${action}).`, {
      transient: true,
      cause: error,
    });
  }
  const { status, data, headers } = error as { status?: unknown; data?: unknown; headers?: Headers };
  if (typeof status !== "number") {
    return new UpstreamError("UPSTREAM_UNAVAILABLE", `Qdrant could not be reached (${action}).`, {
      transient: true,
      cause: error,
    });
  }
  if (status === 429 || status === 408 || status >= 500) {
    const seconds = Number(headers?.get?.("retry-after"));
    return new UpstreamError("UPSTREAM_UNAVAILABLE", `Qdrant failed to ${action} (${status}).`, {
      transient: true,
      cause: error,
      ...(Number.isFinite(seconds) && seconds > 0 ? { retryAfterMs: seconds * 1000 } : {}),
    });
  }
  if (status === 401 || status === 403) {
    return new UpstreamError("UPSTREAM_UNAVAILABLE", `Qdrant refused the API key (${status}): check QDRANT_API_KEY.`, {
      transient: false,
      cause: error,
    });
  }
  // Qdrant's own message names what was wrong, e.g. "Wrong input: Vector dimension error: expected dim: 4, got 8".
  const reason = (data as { status?: { error?: unknown } } | undefined)?.status?.error;
  return new UpstreamError(
    "UPSTREAM_UNAVAILABLE",
    `Qdrant refused to ${action} (${status})${typeof reason === "string" ? `: ${reason.slice(0, 200)}` : ""}.`,
    { transient: false, cause: error },
  );
}
