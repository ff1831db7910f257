import type { IncomingHttpHeaders } from "node:http";
import {
  closeServer,
  createLocalServer,
  listenOnFreePort,
  RequestError,
  readJsonBody,
  sendJson,
} from "../../scripts/local-stack/http.ts";

/**
 * A recorded-contract stand-in for Qdrant: no Qdrant server can be installed here (none on npm or
 * Debian). It implements exactly the REST endpoints src/kb/vectors/qdrant.ts calls, with request and
 * response shapes from Qdrant's REST API reference v1.19.x (api.qdrant.tech/v-1-19-x, matching
 * @qdrant/js-client-rest 1.19): collection exists/get/create/delete, payload index create, points
 * upsert, delete (by ids or filter) and query. Search is exact cosine in memory; errors use Qdrant's
 * envelope {status: {error}, time}; a missing or wrong api-key gets 401 with a plain-text reason.
 * Test-only: GET /__requests lists the method, path and headers of the last requests (trace headers).
 */

interface Point {
  vector: number[];
  payload: Record<string, unknown>;
  version: number;
}

interface Collection {
  size: number;
  distance: string;
  points: Map<string | number, Point>;
  payloadIndexes: Map<string, string>;
}

type Filter = { must?: Condition[]; should?: Condition[]; must_not?: Condition[] };
type Condition = { key?: string; match?: { value?: unknown; any?: unknown[] }; has_id?: unknown[] } & Filter;

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const MAX_RECORDED = 500;
const DISTANCES = ["Cosine", "Euclid", "Dot", "Manhattan"];
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

class QdrantError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export async function startQdrantStandIn(options: { apiKey?: string } = {}): Promise<{
  url: string;
  stop(): Promise<void>;
}> {
  const collections = new Map<string, Collection>();
  const recorded: { method: string; path: string; headers: IncomingHttpHeaders }[] = [];
  let operationId = 0;

  const find = (name: string): Collection => {
    const collection = collections.get(name);
    if (!collection) throw new QdrantError(404, `Not found: Collection \`${name}\` doesn't exist!`);
    return collection;
  };
  const updated = (wait: boolean) => ({ operation_id: ++operationId, status: wait ? "completed" : "acknowledged" });

  const routes: [string, RegExp, (name: string, body: unknown, wait: boolean) => unknown][] = [
    ["GET", /^\/collections\/([^/]+)\/exists$/, (name) => ({ exists: collections.has(name) })],
    ["GET", /^\/collections\/([^/]+)$/, (name) => collectionInfo(find(name))],
    [
      "PUT",
      /^\/collections\/([^/]+)$/,
      (name, body) => {
        const vectors = (body as { vectors?: { size?: unknown; distance?: unknown } } | undefined)?.vectors;
        if (
          !Number.isInteger(vectors?.size) ||
          (vectors?.size as number) < 1 ||
          !DISTANCES.includes(String(vectors?.distance))
        ) {
          throw new QdrantError(400, "Format error in JSON body: vectors: expected {size, distance}");
        }
        if (collections.has(name)) throw new QdrantError(409, `Wrong input: Collection \`${name}\` already exists!`);
        collections.set(name, {
          size: vectors?.size as number,
          distance: String(vectors?.distance),
          points: new Map(),
          payloadIndexes: new Map(),
        });
        return true;
      },
    ],
    ["DELETE", /^\/collections\/([^/]+)$/, (name) => collections.delete(name)],
    [
      "PUT",
      /^\/collections\/([^/]+)\/index$/,
      (name, body, wait) => {
        const { field_name: field, field_schema: schema } = body as { field_name?: unknown; field_schema?: unknown };
        if (typeof field !== "string")
          throw new QdrantError(400, "Format error in JSON body: missing field `field_name`");
        find(name).payloadIndexes.set(field, String(schema));
        return updated(wait);
      },
    ],
    [
      "PUT",
      /^\/collections\/([^/]+)\/points$/,
      (name, body, wait) => {
        const collection = find(name);
        const points = (body as { points?: unknown }).points;
        if (!Array.isArray(points)) throw new QdrantError(400, "Format error in JSON body: missing field `points`");
        const parsed = points.map((p: { id?: unknown; vector?: unknown; payload?: unknown }) => {
          const vector = p.vector;
          if (!Array.isArray(vector) || !vector.every((x) => typeof x === "number")) {
            throw new QdrantError(400, "Format error in JSON body: vector must be an array of numbers");
          }
          if (vector.length !== collection.size) {
            throw new QdrantError(
              400,
              `Wrong input: Vector dimension error: expected dim: ${collection.size}, got ${vector.length}`,
            );
          }
          return { id: pointId(p.id), vector, payload: (p.payload ?? {}) as Record<string, unknown> };
        });
        const version = ++operationId;
        for (const p of parsed) {
          const stored = collection.distance === "Cosine" ? normalise(p.vector) : p.vector;
          collection.points.set(p.id, { vector: stored, payload: p.payload, version });
        }
        return { operation_id: version, status: wait ? "completed" : "acknowledged" };
      },
    ],
    [
      "POST",
      /^\/collections\/([^/]+)\/points\/delete$/,
      (name, body, wait) => {
        const collection = find(name);
        const { points, filter } = body as { points?: unknown; filter?: Filter };
        if (Array.isArray(points)) {
          for (const id of points) collection.points.delete(pointId(id));
        } else if (filter) {
          for (const [id, point] of collection.points) if (matches(filter, id, point)) collection.points.delete(id);
        } else {
          throw new QdrantError(400, "Format error in JSON body: expected `points` or `filter`");
        }
        return updated(wait);
      },
    ],
    [
      "POST",
      /^\/collections\/([^/]+)\/points\/query$/,
      (name, body) => {
        const collection = find(name);
        const {
          query,
          filter,
          limit = 10,
          with_payload: withPayload = false,
        } = body as {
          query?: unknown;
          filter?: Filter;
          limit?: number;
          with_payload?: boolean;
        };
        if (!Array.isArray(query))
          throw new QdrantError(400, "Format error in JSON body: `query` must be a dense vector");
        if (query.length !== collection.size) {
          throw new QdrantError(
            400,
            `Wrong input: Vector dimension error: expected dim: ${collection.size}, got ${query.length}`,
          );
        }
        const target = collection.distance === "Cosine" ? normalise(query) : query;
        const hits = [...collection.points]
          .filter(([id, point]) => !filter || matches(filter, id, point))
          .map(([id, point]) => ({ id, version: point.version, score: dot(target, point.vector), point }))
          .sort((a, b) => b.score - a.score)
          .slice(0, limit);
        return {
          points: hits.map(({ id, version, score, point }) => ({
            id,
            version,
            score,
            ...(withPayload ? { payload: point.payload } : {}),
          })),
        };
      },
    ],
  ];

  const server = createLocalServer(async (request, response) => {
    const started = performance.now();
    const url = new URL(request.url ?? "/", "http://standin");
    if (request.method === "GET" && url.pathname === "/__requests") {
      sendJson(response, 200, recorded);
      return;
    }
    recorded.push({ method: request.method ?? "", path: url.pathname, headers: request.headers });
    recorded.splice(0, recorded.length - MAX_RECORDED);
    try {
      const key = request.headers["api-key"] ?? /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
      if (options.apiKey && key !== options.apiKey) {
        const reason = key ? "Invalid API key or JWT" : "Must provide an API key or an Authorization bearer token";
        response.writeHead(401, { "content-type": "text/plain" }).end(`Unauthorized: ${reason}`);
        return;
      }
      for (const [method, pattern, handle] of routes) {
        const match = request.method === method ? pattern.exec(url.pathname) : null;
        if (!match) continue;
        const body = method === "GET" || method === "DELETE" ? undefined : await readJsonBody(request, MAX_BODY_BYTES);
        const result = handle(decodeURIComponent(match[1] as string), body, url.searchParams.get("wait") === "true");
        sendJson(response, 200, { result, status: "ok", time: seconds(started) });
        return;
      }
      sendJson(response, 404, {
        status: { error: `Not found: ${request.method} ${url.pathname}` },
        time: seconds(started),
      });
    } catch (error) {
      const status = error instanceof QdrantError || error instanceof RequestError ? error.status : 500;
      sendJson(response, status, { status: { error: (error as Error).message }, time: seconds(started) });
    }
  });
  const port = await listenOnFreePort(server);
  return { url: `http://127.0.0.1:${port}`, stop: () => closeServer(server) };
}

const seconds = (started: number) => (performance.now() - started) / 1000;

function collectionInfo(collection: Collection) {
  return {
    status: "green",
    optimizer_status: "ok",
    indexed_vectors_count: 0,
    points_count: collection.points.size,
    segments_count: 1,
    config: {
      params: {
        vectors: { size: collection.size, distance: collection.distance },
        shard_number: 1,
        replication_factor: 1,
        write_consistency_factor: 1,
        on_disk_payload: true,
      },
      hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
      optimizer_config: {
        deleted_threshold: 0.2,
        vacuum_min_vector_number: 1000,
        default_segment_number: 0,
        max_segment_size: null,
        memmap_threshold: null,
        indexing_threshold: 10000,
        flush_interval_sec: 5,
        max_optimization_threads: null,
      },
      wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
      quantization_config: null,
    },
    payload_schema: Object.fromEntries(
      [...collection.payloadIndexes].map(([field, type]) => [
        field,
        { data_type: type, points: [...collection.points.values()].filter((p) => field in p.payload).length },
      ]),
    ),
  };
}

/** Qdrant ids are unsigned integers or UUIDs (returned in lower-case hyphenated form). */
function pointId(id: unknown): string | number {
  if (typeof id === "number" && Number.isInteger(id) && id >= 0) return id;
  if (typeof id === "string" && UUID.test(id)) {
    const hex = id.replace(/-/g, "").toLowerCase();
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  throw new QdrantError(
    400,
    `Format error in JSON body: value ${JSON.stringify(id)} is not a valid point ID, valid values are either an unsigned integer or a UUID`,
  );
}

function matches(filter: Filter, id: string | number, point: Point): boolean {
  const test = (c: Condition): boolean => {
    if (c.must || c.should || c.must_not) return matches(c, id, point);
    if (c.has_id) return c.has_id.map(pointId).includes(id);
    if (c.key === undefined || !c.match) throw new QdrantError(400, "Format error in JSON body: unsupported condition");
    const value = point.payload[c.key];
    if ("value" in c.match) return value === c.match.value;
    if (Array.isArray(c.match.any)) return c.match.any.includes(value);
    throw new QdrantError(400, "Format error in JSON body: unsupported match");
  };
  return (
    (filter.must ?? []).every(test) &&
    !(filter.must_not ?? []).some(test) &&
    (!filter.should?.length || filter.should.some(test))
  );
}

function normalise(vector: number[]): number[] {
  const length = Math.sqrt(dot(vector, vector));
  return length > 0 ? vector.map((x) => x / length) : vector;
}

function dot(a: number[], b: number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}
