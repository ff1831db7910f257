// npm run eval:answers [-- options]: answer quality on the question set of test/fixtures/kb/questions.ts.
// Uploads the three kb-samples documents to a fresh `npm run dev` (or --url), asks every question through
// POST /api/rag/query restricted to those documents, and prints the share answered correctly, the share of
// unanswerable questions declined and the citation precision (./score.ts). No key: the local composer answers.
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { NOT_IN_KNOWLEDGE_BASE } from "../../src/llm/local-composer.ts";
import { sampleQuestions } from "../../test/fixtures/kb/questions.ts";
import { accessToken, existingTarget, freshTarget, type Target } from "../answers/server.ts";
import { parseOptions } from "../lib/options.ts";
import { runScope } from "../lib/run-scope.ts";
import { type AskedQuestion, describeFigures, figuresOf, judge } from "./score.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const SAMPLES = [
  { name: "Outpatient-Guide-508-CURATED.pdf", type: "application/pdf" },
  { name: "medlineplus-hypoglycemia.md", type: "text/markdown" },
  { name: "OHDSI-Sglt2iDka-DataSources.fragment.html", type: "text/html" },
];
const USAGE = `usage: npm run eval:answers -- [options]
  --source S           what npm run dev runs: head (a copy of the last commit, default) or working-tree
                       (a copy of the files as they are now, other people's uncommitted edits included)
  --url URL            use a running server instead (admin from BENCH_ADMIN_EMAIL and BENCH_ADMIN_PASSWORD);
                       it must answer with the local composer (no OPENAI_API_KEY)
  --port N             port of the npm run dev it starts otherwise (default 8794)
  --data DIR           the samples' folder (default ../shared/data/kb-samples)
  --verbose            print every answer
  --timeout-minutes N  the whole run stops after this long (default 15)`;

const { args, int, oneOf } = parseOptions(USAGE, {
  source: { type: "string", default: "head" },
  url: { type: "string" },
  port: { type: "string", default: "8794" },
  data: { type: "string", default: join(ROOT, "..", "shared", "data", "kb-samples") },
  verbose: { type: "boolean", default: false },
  "timeout-minutes": { type: "string", default: "15" },
});
const source = oneOf("source", ["head", "working-tree"]);
const deadline = Date.now() + int("timeout-minutes") * 60_000;
const { say, defer, command, runMain } = runScope("eval:answers", { stopAt: deadline });

async function main(): Promise<number> {
  const { target, commit } = args.url
    ? { target: await existingTarget(args.url), commit: "as deployed" }
    : await freshTarget(
        ROOT,
        source,
        int("port"),
        join(ROOT, "bench", "answer-quality", "logs", `dev-${Date.now()}.log`),
        defer,
        say,
      );
  const token = await accessToken(target);
  const documentIds: string[] = [];
  for (const sample of SAMPLES) documentIds.push(await uploadSample(target, token, sample));
  const chunks = new Map<string, string>();
  for (const id of documentIds) for (const [chunkId, text] of await chunkTexts(target, id)) chunks.set(chunkId, text);
  say(`${SAMPLES.length} documents ready (${chunks.size} chunks); asking ${sampleQuestions.length} questions`);

  const verdicts = [];
  for (const question of sampleQuestions) {
    const answer = await target.client.json("POST", "/api/rag/query", 200, {
      contentType: "application/json",
      body: JSON.stringify({ query: question.question, filters: { document_ids: documentIds }, stream: false }),
    });
    const cited = (answer.citations as { chunk_id: string }[]).map((c) => chunks.get(c.chunk_id) ?? "");
    const asked: AskedQuestion = { ...question, content: String(answer.content), citedChunks: cited };
    const verdict = judge(asked, NOT_IN_KNOWLEDGE_BASE);
    verdicts.push(verdict);
    const mark = verdict.answerable ? (verdict.correct ? "correct" : "WRONG") : verdict.declined ? "declined" : "WRONG";
    say(`${mark.padEnd(8)} ${question.question}${args.verbose ? `\n           ${asked.content}` : ""}`);
  }
  console.log(`\n${command} · commit ${commit} · ${target.description}`);
  for (const line of describeFigures(figuresOf(verdicts))) console.log(`  ${line}`);
  return 0;
}

/** Uploads one sample (or finds it already there) and waits until it is indexed; returns its id. */
async function uploadSample(target: Target, token: string, sample: { name: string; type: string }): Promise<string> {
  const form = new FormData();
  const bytes = await readFile(join(args.data as string, sample.name));
  form.set("file", new File([bytes], basename(sample.name), { type: sample.type }));
  const res = await fetch(`${target.client.baseUrl}/api/admin/kb/documents`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: form,
    signal: AbortSignal.timeout(60_000),
  });
  const body = (await res.json()) as { id: string };
  if (res.status !== 202 && res.status !== 200) throw new Error(`upload ${sample.name}: ${JSON.stringify(body)}`);
  for (;;) {
    const document = await target.client.json("GET", `/api/admin/kb/documents/${body.id}`, 200);
    if (document.status === "ready") return body.id;
    if (document.status === "failed") throw new Error(`${sample.name} failed: ${JSON.stringify(document)}`);
    if (Date.now() > deadline) throw new Error(`${sample.name} was not indexed in time`);
    await sleep(500);
  }
}

async function chunkTexts(target: Target, documentId: string): Promise<[string, string][]> {
  const page = await target.client.json("GET", `/api/admin/kb/documents/${documentId}/chunks?page_size=200`, 200);
  if (Number(page.total) > 200) throw new Error(`document ${documentId} has more chunks than one page holds`);
  return (page.items as { id: string; text: string }[]).map((c) => [c.id, c.text]);
}

await runMain(main);
