import { type SQL, sql } from "drizzle-orm";

/** Metadata filters; each one given narrows the candidates (source types: any of; tags: all of; documents: any of). */
export interface SearchFilters {
  sourceTypes?: string[];
  tags?: string[];
  documentIds?: string[];
}

/** `and …` conditions on a kb_documents row aliased `d`; empty when there is no filter. */
export function documentConditions(filters: SearchFilters): SQL {
  const conditions: SQL[] = [];
  if (filters.sourceTypes) conditions.push(sql`and d.source_type = any(${sql.param(filters.sourceTypes)}::text[])`);
  if (filters.tags) conditions.push(sql`and d.tags @> ${sql.param(filters.tags)}::text[]`);
  if (filters.documentIds) conditions.push(sql`and d.id = any(${sql.param(filters.documentIds)}::uuid[])`);
  return sql.join(conditions, sql` `);
}

/** The visible chunks: those of their document's active generation (a reindex in progress stays invisible). */
export const activeChunks = sql`kb_chunks c join kb_documents d on d.id = c.document_id and c.generation = d.active_generation`;
