// SciFact in the BEIR layout: the corpus as import records, and the queries that have judgments.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Judgments, parseQrels } from "./evaluate.ts";

export const SOURCE_TYPE = "scifact";

export interface ImportRecord {
  external_id: string;
  title: string;
  text: string;
  source_type: string;
}

export interface Query {
  id: string;
  text: string;
}

const jsonLines = async (path: string) =>
  (await readFile(path, "utf8"))
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** Title and abstract as one text, the way BEIR evaluates SciFact (the import does not index titles). */
export async function readCorpus(dir: string): Promise<ImportRecord[]> {
  return (await jsonLines(join(dir, "corpus.jsonl"))).map((doc, i) => {
    if (typeof doc._id !== "string" || typeof doc.text !== "string") {
      throw new Error(`corpus.jsonl line ${i + 1}: not a BEIR document ({_id, title, text})`);
    }
    const title = typeof doc.title === "string" ? doc.title.trim() : "";
    return {
      external_id: doc._id,
      title: (title || doc._id).slice(0, 500),
      text: title ? `${title}\n\n${doc.text}` : doc.text,
      source_type: SOURCE_TYPE,
    };
  });
}

/** The queries with judgments in qrels/<split>.tsv, and those judgments. */
export async function readJudgedQueries(
  dir: string,
  split: string,
): Promise<{ queries: Query[]; judgments: Judgments }> {
  const judgments = parseQrels(await readFile(join(dir, "qrels", `${split}.tsv`), "utf8"));
  const queries = (await jsonLines(join(dir, "queries.jsonl")))
    .map((q) => ({ id: String(q._id), text: String(q.text) }))
    .filter((q) => judgments.has(q.id));
  const missing = [...judgments.keys()].filter((id) => !queries.some((q) => q.id === id));
  if (missing.length)
    throw new Error(`qrels/${split}.tsv judges queries missing from queries.jsonl: ${missing.slice(0, 5).join(", ")}`);
  return { queries, judgments };
}
