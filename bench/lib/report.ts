// Where the bench runners write: their generated block of docs/benchmarks.md and their raw results.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The comments around a runner's generated block, and the heading of the section made for it when missing. */
export interface DocBlock {
  start: string;
  end: string;
  section: string;
}

/** Replaces the block in docs/benchmarks.md, or appends a section holding it; the rest of the file is kept. */
export async function writeDocBlock(root: string, marks: DocBlock, block: string): Promise<string> {
  const path = join(root, "docs", "benchmarks.md");
  const doc = await readFile(path, "utf8").catch(() => "# Benchmarks\n");
  const at = doc.indexOf(marks.start);
  const to = doc.indexOf(marks.end, at);
  const next =
    at >= 0 && to > at
      ? [doc.slice(0, at), block, doc.slice(to + marks.end.length)].join("")
      : [doc.trimEnd(), "", marks.section, "", block, ""].join("\n");
  await writeFile(path, next);
  return path;
}

/** Writes the report as bench/<bench>/results/<date of its start>.json; returns the path. */
export async function writeResultsFile(root: string, bench: string, report: { started_at: string }): Promise<string> {
  const dir = join(root, "bench", bench, "results");
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${report.started_at.slice(0, 10)}.json`);
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}
