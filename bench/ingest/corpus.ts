// The BEIR corpus as import records, grouped into JSON Lines request bodies.
import { readFile } from "node:fs/promises";

export interface ImportRecord {
  external_id: string;
  title: string;
  text: string;
  source_type: string;
}

export interface ImportBody {
  documents: number;
  bytes: number;
  ndjson: string;
}

export const SOURCE_TYPE = "scifact";

/** BEIR lines are {_id, title, text, metadata}; titles can be empty in BEIR, the import needs one. */
export async function readBeirCorpus(path: string, limit?: number): Promise<ImportRecord[]> {
  const lines = (await readFile(path, "utf8")).split("\n").filter((l) => l.trim());
  const records = lines.map((line, i) => {
    const doc = JSON.parse(line) as { _id?: unknown; title?: unknown; text?: unknown };
    if (typeof doc._id !== "string" || typeof doc.text !== "string") {
      throw new Error(`${path}:${i + 1}: not a BEIR document ({_id, title, text})`);
    }
    const title = typeof doc.title === "string" && doc.title.trim() ? doc.title.trim().slice(0, 500) : doc._id;
    return { external_id: doc._id, title, text: doc.text, source_type: SOURCE_TYPE };
  });
  return limit ? records.slice(0, limit) : records;
}

/** Consecutive bodies of at most `perRequest` records and `maxBytes` bytes each. */
export function importBodies(records: ImportRecord[], perRequest: number, maxBytes: number): ImportBody[] {
  const bodies: ImportBody[] = [];
  let lines: string[] = [];
  let bytes = 0;
  const flush = () => {
    if (lines.length) bodies.push({ documents: lines.length, bytes, ndjson: lines.join("") });
    lines = [];
    bytes = 0;
  };
  for (const record of records) {
    const line = `${JSON.stringify(record)}\n`;
    const size = Buffer.byteLength(line);
    if (size > maxBytes) throw new Error(`document ${record.external_id} alone is over ${maxBytes} bytes`);
    if (lines.length >= perRequest || bytes + size > maxBytes) flush();
    lines.push(line);
    bytes += size;
  }
  flush();
  return bodies;
}
