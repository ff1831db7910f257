// `kb ...`: the knowledge base over the admin API (/api/admin/kb) and search (/api/kb/search).
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type CliIo,
  CommandFailed,
  choice,
  type Group,
  type Json,
  jsonOption,
  one,
  options,
  UsageError,
} from "./command.ts";
import { allPages, cell, table } from "./format.ts";
import { describeProblem, failed } from "./http.ts";
import { type Api, signedIn } from "./session.ts";

const STATUSES = ["queued", "processing", "ready", "failed"];
const MODES = ["hybrid", "keyword", "vector"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Uploads carry up to KB_MAX_UPLOAD_BYTES (50 MB): more time than a JSON call.
const UPLOAD_TIMEOUT_MS = 120_000;
const WAIT_POLL_MS = 1_000;
// As long as the server's own progress stream lasts.
const WAIT_MAX_MS = 10 * 60_000;

/** Where ingestion stands: "ready, 12 chunks", "processing (embedding 40%)", "failed: why". */
function state(doc: Json): string {
  if (doc.status === "ready") return `ready, ${String(doc.chunk_count)} chunks`;
  if (doc.status === "failed") return `failed: ${String(doc.error ?? "unknown error")}`;
  return doc.stage ? `${String(doc.status)} (${String(doc.stage)} ${String(doc.progress)}%)` : String(doc.status);
}

/** Polls a document until it is ready or failed, telling each change on standard error; its last state. */
async function waitFor(api: Api, id: string, io: CliIo, last = ""): Promise<Json> {
  const deadline = Date.now() + WAIT_MAX_MS;
  for (;;) {
    const res = await api.call("GET", `/api/admin/kb/documents/${id}`);
    if (!res.ok) throw new CommandFailed(describeProblem(res.status, res.json));
    const now = state(res.json);
    if (res.json.status === "ready" || res.json.status === "failed") return res.json;
    if (now !== last) io.err(`  ${now}`);
    last = now;
    if (Date.now() > deadline) throw new CommandFailed(`Still ${now} after ${WAIT_MAX_MS / 60_000} minutes.`);
    await sleep(WAIT_POLL_MS);
  }
}

/** Prints a waited-for document's end state: exit 0 when ready, 1 when ingestion failed. */
function finished(doc: Json, io: CliIo): number {
  const line = `${String(doc.id)} ${state(doc)}`;
  if (doc.status === "failed") {
    io.err(line);
    return 1;
  }
  io.out(line);
  return 0;
}

const documentId = (positionals: string[]) => {
  const id = one(positionals, "document id");
  if (!UUID.test(id)) throw new UsageError(`"${id}" is not a document id (a UUID, as kb list shows)`);
  return id;
};

export const kb: Group = {
  summary: "upload documents to the knowledge base, list them, follow their ingestion, search it",
  note: "Admins upload; viewers may list and follow; any signed-in user may search.",
  commands: {
    upload: {
      summary: "upload a document (PDF, DOCX, HTML, Markdown or text) for ingestion",
      usage:
        "kb upload FILE [--title TITLE] [--source-type TYPE] [--tags A,B] [--external-id ID] [--metadata JSON]\n" +
        "  [--wait] [--url URL]\n" +
        "  --wait follows ingestion until the document is ready (exit 0) or failed (exit 1).",
      async run(args, io) {
        const { values, positionals } = options(
          args,
          {
            title: { type: "string" },
            "source-type": { type: "string" },
            tags: { type: "string" },
            "external-id": { type: "string" },
            metadata: { type: "string" },
            wait: { type: "boolean" },
          },
          true,
        );
        const path = one(positionals, "file");
        if (values.metadata !== undefined) jsonOption(values.metadata, "--metadata");
        let bytes: Buffer;
        try {
          bytes = await readFile(path);
        } catch (error) {
          throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
        }
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const form = new FormData();
        form.set("file", new File([new Uint8Array(bytes)], basename(path)));
        const fields = {
          title: values.title,
          source_type: values["source-type"],
          tags: values.tags,
          external_id: values["external-id"],
          metadata: values.metadata,
        };
        for (const [name, value] of Object.entries(fields)) if (value !== undefined) form.set(name, value);
        const res = await api.send({
          method: "POST",
          path: "/api/admin/kb/documents",
          form,
          timeoutMs: UPLOAD_TIMEOUT_MS,
        });
        if (!res.ok) return failed(io, res);
        const doc = res.json;
        const known = doc.duplicate ? "Already in the knowledge base (same bytes)" : "Uploaded";
        io.out(`${known}: ${String(doc.id)} ${cell(doc.title)} (${state(doc)}).`);
        if (!values.wait) {
          if (doc.status !== "ready") io.err(`Follow it with: npm run admin -- kb status ${String(doc.id)} --wait`);
          return 0;
        }
        return finished(doc.status === "ready" ? doc : await waitFor(api, String(doc.id), io, state(doc)), io);
      },
    },
    list: {
      summary: "one line per document: id, status, chunks, source type, title (newest first)",
      usage:
        "kb list [TEXT] [--status queued|processing|ready|failed] [--tag TAG] [--source-type TYPE] [--url URL]\n" +
        "  TEXT searches titles.",
      async run(args, io) {
        const { values, positionals } = options(
          args,
          { status: { type: "string" }, tag: { type: "string" }, "source-type": { type: "string" } },
          true,
        );
        if (positionals.length > 1) throw new UsageError("give one search text (quote it when it holds spaces)");
        choice("--status", values.status, STATUSES);
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const { items, failure } = await allPages(api, "/api/admin/kb/documents", {
          q: positionals[0],
          status: values.status,
          tag: values.tag,
          source_type: values["source-type"],
        });
        if (failure) return failed(io, failure);
        if (items.length === 0) io.err("No documents match.");
        const rows = items.map((d) => [
          String(d.id),
          String(d.status),
          String(d.chunk_count),
          cell(d.source_type),
          cell(d.title),
        ]);
        for (const line of table(rows)) io.out(line);
        return 0;
      },
    },
    status: {
      summary: "a document's ingestion: status, stage, progress, chunks, error (--wait: until it ends)",
      usage: "kb status ID [--wait] [--url URL]",
      async run(args, io) {
        const { values, positionals } = options(args, { wait: { type: "boolean" } }, true);
        const id = documentId(positionals);
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        if (values.wait) return finished(await waitFor(api, id, io), io);
        const res = await api.call("GET", `/api/admin/kb/documents/${id}`);
        if (!res.ok) return failed(io, res);
        const d = res.json;
        const rows = [
          ["title", cell(d.title)],
          ["status", state(d)],
          ["chunks", `${String(d.chunk_count)} (${String(d.token_count)} tokens)`],
          ["type", `${String(d.mime_type)}, ${String(d.byte_size)} bytes, source ${cell(d.source_type)}`],
          ["attempts", String(d.attempts)],
          ["indexed", String(d.indexed_at ?? "not yet")],
        ];
        for (const line of table(rows)) io.out(line);
        return 0;
      },
    },
    search: {
      summary: "search the knowledge base: best passages first, with score, title and snippet",
      usage:
        "kb search QUERY [--top-k N] [--mode hybrid|keyword|vector] [--tag TAG ...] [--source-type TYPE]\n" +
        "  [--url URL]",
      async run(args, io) {
        const { values, positionals } = options(
          args,
          {
            "top-k": { type: "string" },
            mode: { type: "string" },
            tag: { type: "string", multiple: true },
            "source-type": { type: "string" },
          },
          true,
        );
        const query = positionals.join(" ").trim();
        if (!query) throw new UsageError("give the query");
        const topK = values["top-k"] === undefined ? undefined : Number(values["top-k"]);
        if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) {
          throw new UsageError("--top-k must be a positive whole number");
        }
        choice("--mode", values.mode, MODES);
        const filters = {
          ...(values.tag ? { tags: values.tag } : {}),
          ...(values["source-type"] ? { source_type: values["source-type"] } : {}),
        };
        const api = await signedIn(values.url, io);
        if (!api) return 2;
        const res = await api.call("POST", "/api/kb/search", {
          query,
          ...(topK === undefined ? {} : { top_k: topK }),
          ...(values.mode ? { mode: values.mode } : {}),
          ...(Object.keys(filters).length ? { filters } : {}),
        });
        if (!res.ok) return failed(io, res);
        const results = (res.json.results ?? []) as Json[];
        if (results.length === 0) io.err("Nothing in the knowledge base matches.");
        results.forEach((r, i) => {
          const where = r.page === null || r.page === undefined ? "" : `, page ${String(r.page)}`;
          io.out(`${i + 1}. ${Number(r.score).toFixed(3)}  ${String(r.title)}${where}  (${String(r.document_id)})`);
          io.out(`   ${String(r.snippet).replace(/\s+/g, " ")}`);
        });
        return 0;
      },
    },
  },
};
