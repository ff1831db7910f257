import { createRoute, z } from "@hono/zod-openapi";
import { enforceDailyCap } from "../costs/daily-cap.ts";
import { principalOf, requireUser } from "../middleware/auth.ts";
import type { SearchFilters } from "../rag/filters.ts";
import { hybridSearch } from "../rag/search.ts";
import { createRouter, jsonBody, jsonResponse, problem, signedIn } from "./router.ts";

const oneOrMany = <T extends z.ZodType>(item: T) =>
  z.union([item, z.array(item).min(1).max(20)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);

export const SearchFiltersSchema = z
  .strictObject({
    source_type: oneOrMany(z.string().trim().min(1).max(64)).optional().describe("any of"),
    tags: z.array(z.string().trim().min(1).max(64)).min(1).max(20).optional().describe("all of"),
    document_ids: z.array(z.uuid()).min(1).max(100).optional().describe("any of"),
  })
  .openapi("KbSearchFilters");

export const toSearchFilters = (filters: z.output<typeof SearchFiltersSchema> | undefined): SearchFilters => ({
  sourceTypes: filters?.source_type,
  tags: filters?.tags,
  documentIds: filters?.document_ids,
});

const SearchRequest = z
  .strictObject({
    query: z.string().trim().min(1, "must not be empty").max(2_000),
    top_k: z.number().int().min(1).max(100).optional().describe("default RETRIEVAL_TOP_K (10)"),
    filters: SearchFiltersSchema.optional(),
    score_floor: z.number().min(0).max(1).optional().describe("minimum fused score (0-1)"),
    mode: z.enum(["hybrid", "keyword", "vector"]).default("hybrid"),
  })
  .openapi("KbSearchRequest");

const RetrieverHit = z.object({ rank: z.number().int(), score: z.number() });
const RetrieverReport = z.object({
  candidates: z.number().int(),
  weight: z.number().optional().describe("its weight in the fusion, when it ran"),
  skipped: z.string().optional().describe("why it did not run"),
});

const SearchResponse = z
  .object({
    query: z.string(),
    mode: z.enum(["hybrid", "keyword", "vector"]),
    results: z.array(
      z.object({
        document_id: z.uuid(),
        external_id: z.string().nullable(),
        title: z.string(),
        chunk_id: z.uuid(),
        chunk_index: z.number().int(),
        page: z.number().int().nullable(),
        heading_path: z.array(z.string()),
        snippet: z.string().describe("up to 300 characters around the best-matching words"),
        score: z.number().describe("fused score: 1 = ranked first by every retriever that ran"),
        retrievers: z.object({ keyword: RetrieverHit.optional(), vector: RetrieverHit.optional() }),
      }),
    ),
    took_ms: z.number(),
    retrievers: z.object({ keyword: RetrieverReport, vector: RetrieverReport }),
  })
  .openapi("KbSearchResponse");

export const searchRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/api/kb/search",
    tags: ["knowledge base"],
    summary: "Search the knowledge base: BM25 and vector retrieval fused by reciprocal rank",
    security: signedIn,
    middleware: [requireUser] as const,
    request: { body: jsonBody(SearchRequest) },
    responses: {
      200: jsonResponse("Ranked chunks, best first", SearchResponse),
      401: problem("Not signed in"),
      422: problem("Empty query, top_k out of range, or an unknown field"),
      429: problem("Daily spending cap reached: BUDGET_EXCEEDED, Retry-After until midnight UTC"),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    await enforceDailyCap(c.var.config, c.env, principalOf(c).userId, { search: body.mode });
    const found = await hybridSearch(
      c.var.config,
      c.env,
      {
        query: body.query,
        topK: body.top_k,
        mode: body.mode,
        scoreFloor: body.score_floor,
        filters: toSearchFilters(body.filters),
      },
      { ctx: c.executionCtx },
    );
    return c.json(
      {
        query: body.query,
        mode: found.mode,
        results: found.results.map((r) => ({
          document_id: r.documentId,
          external_id: r.externalId,
          title: r.title,
          chunk_id: r.chunkId,
          chunk_index: r.chunkIndex,
          page: r.page,
          heading_path: r.headingPath,
          snippet: r.snippet,
          score: r.score,
          retrievers: r.retrievers,
        })),
        took_ms: found.tookMs,
        retrievers: found.retrievers,
      },
      200,
    );
  },
);
