import { env } from "cloudflare:workers";
import { sql, TransactionRollbackError } from "drizzle-orm";
import { describe, expect, it, vi } from "vitest";
import { withPoolDb } from "../../src/db/client.ts";
import { documents } from "../../src/db/schema/kb.ts";
import { cronJobs } from "../../src/jobs/schedule.ts";
import { type DocumentCensus, documentCensus } from "../../src/kb/census.ts";
import { INGEST_QUEUE, ingestDocument } from "../../src/kb/ingest.ts";
import { recordKbGauges } from "../../src/kb/jobs.ts";
import { createVectorStore } from "../../src/kb/vectors/index.ts";
import type { VectorStore } from "../../src/kb/vectors/port.ts";
import wranglerToml from "../../wrangler.toml?raw";
import { pdf, pdfTextString, withPdfInfo, zip } from "../fixtures/kb/generate.ts";
import { samples } from "../fixtures/kb/samples.ts";
import { call, callRaw, stack } from "./harness.ts";
import { config, db, signedInUser } from "./identity-helpers.ts";
import {
  capturedQueue,
  deliverIngestion,
  documentRow,
  ingestNow,
  recordingEnv,
  untilSettled,
  upload as uploadThroughQueue,
} from "./kb-helpers.ts";

// Ingestion without pgvector indexes keywords only: suites that assert on vectors or ingest to the end skip
// there (PGlite runs them); validation, access and audit run on every Postgres.
const hasVector = stack().databaseHasVector;

const rows = async <T>(query: ReturnType<typeof sql>) => ((await db.execute(query)) as unknown as { rows: T[] }).rows;
const unique = (text: string) => `${text}\n\nUnique marker ${crypto.randomUUID()}.`;

// Uploads (and reindexes) here queue their message to the test, not the real consumer: a test that indexes
// with ingestNow must not race it. The tests about the real queue use uploadThroughQueue.
const noConsumer = () => capturedQueue().bindings;
const upload = (...[token, file, fields = {}, overrides = {}]: Parameters<typeof uploadThroughQueue>) =>
  uploadThroughQueue(token, file, fields, { ...noConsumer(), ...overrides });

describe.skipIf(!hasVector)("upload: real samples through the real queue", () => {
  it("ingests the CDC PDF with page numbers, the MedlinePlus Markdown and the OHDSI HTML with heading paths", async () => {
    const admin = await signedInUser("admin");
    const uploaded = await Promise.all([
      uploadThroughQueue(
        admin.access,
        { ...samples.cdcPdf, type: "application/pdf" },
        { tags: "infection,cdc", source_type: "guideline" },
      ),
      uploadThroughQueue(admin.access, { ...samples.medlineplusMarkdown, type: "text/markdown" }),
      uploadThroughQueue(admin.access, { ...samples.ohdsiHtml, type: "text/html" }),
    ]);
    for (const u of uploaded) {
      // Duplicates are fine if another test file ingested the same sample earlier.
      expect([200, 202]).toContain(u.status);
      expect(u.body.status_url).toBe(`/api/admin/kb/documents/${u.body.id}`);
    }
    // The local queue delivers in batches (up to 5 s) and the first PDF loads PDF.js: allow for a loaded machine.
    const [cdc, medline, ohdsi] = await Promise.all(uploaded.map((u) => untilSettled(u.body.id, 60_000)));
    expect([cdc?.status, medline?.status, ohdsi?.status]).toEqual(["ready", "ready", "ready"]);
    expect(cdc?.mimeType).toBe("application/pdf");

    const pages = await rows<{ page: number }>(sql`select distinct page from kb_chunks c join kb_documents d
      on d.id = c.document_id and d.active_generation = c.generation where d.id = ${cdc?.id} order by page`);
    expect(pages.map((p) => p.page)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    const chunkPage = await call("GET", `/api/admin/kb/documents/${medline?.id}/chunks?page_size=200`, {
      token: admin.access,
    });
    expect(chunkPage.status).toBe(200);
    expect(chunkPage.body.total).toBe(medline?.chunkCount);
    expect(chunkPage.body.items.some((c: { heading_path: string[] }) => c.heading_path.length > 0)).toBe(true);

    const detail = await call("GET", `/api/admin/kb/documents/${ohdsi?.id}`, { token: admin.access });
    expect(detail.body).toMatchObject({
      status: "ready",
      progress: 100,
      embedding_model: "local-hash-v1",
      embedding_dimensions: 384,
    });
    expect(detail.body.chunk_count).toBeGreaterThan(0);
    expect(detail.body.token_count).toBeGreaterThan(0);
    expect(Object.keys(detail.body.timings)).toEqual(expect.arrayContaining(["extract_ms", "embed_ms", "write_ms"]));
  }, 90_000);

  it("returns the existing document for the same bytes, flagged duplicate", async () => {
    const admin = await signedInUser("admin");
    const bytes = unique("# Dup\n\nSome text about duplicate uploads.");
    const first = await upload(admin.access, { bytes, name: "a.md", type: "text/markdown" });
    const second = await upload(admin.access, { bytes, name: "b.md", type: "text/markdown" });
    expect(first.status).toBe(202);
    expect(first.body.duplicate).toBe(false);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ id: first.body.id, duplicate: true });
  });

  it("stores and queues again the same bytes of a document whose first upload died after its row", async () => {
    // What chaos network-latency saw: the INSERT committed after the client had given up, so neither the bytes
    // nor the message were stored, and the client's retry found the row.
    const admin = await signedInUser("admin");
    const bytes = unique("# Orphan\n\nAn upload cut off after its row.");
    const first = await upload(admin.access, { bytes, name: "a.md", type: "text/markdown" });
    await env.DOCUMENTS.delete(`documents/${first.body.id}`);
    const queue = capturedQueue();
    const retry = await upload(admin.access, { bytes, name: "a.md", type: "text/markdown" }, {}, queue.bindings);
    expect(retry.body).toMatchObject({ id: first.body.id, duplicate: true, status: "queued" });
    expect(queue.sent.map((m) => m.payload)).toEqual([{ documentId: first.body.id, generation: 1 }]);
    expect(await env.DOCUMENTS.get(`documents/${first.body.id}`)).not.toBeNull();
    // Once it is indexed (or failed), the same bytes are only the duplicate: nothing is queued again.
    await db.execute(sql`update kb_documents set status = 'ready', active_generation = 1 where id = ${first.body.id}`);
    const later = capturedQueue();
    await upload(admin.access, { bytes, name: "a.md", type: "text/markdown" }, {}, later.bindings);
    expect(later.sent).toEqual([]);
  });
});

describe("upload: bad files and bad input", () => {
  it.each([
    ["an empty file", new Uint8Array(), "x.txt", 422],
    ["a zip renamed .pdf", zip({ "a.txt": "hello" }), "report.pdf", 415],
    [
      "a PNG renamed .txt",
      Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
      "notes.txt",
      415,
    ],
  ])("%s → %i problem, nothing stored", async (_name, bytes, name, status) => {
    const admin = await signedInUser("admin");
    const before = await rows<{ n: number }>(sql`select count(*)::int as n from kb_documents`);
    const res = await upload(admin.access, { bytes, name });
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect((await rows<{ n: number }>(sql`select count(*)::int as n from kb_documents`))[0]?.n).toBe(before[0]?.n);
  });

  it("a file over the limit → 413", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(
      admin.access,
      { bytes: "x".repeat(5_000), name: "big.txt" },
      {},
      { KB_MAX_UPLOAD_BYTES: "1000" },
    );
    expect(res.status).toBe(413);
  });

  it("no file, bad metadata, bad source_type → 422 per field; not multipart → 415", async () => {
    const admin = await signedInUser("admin");
    const form = new FormData();
    form.set("title", "no file");
    const noFile = await callRaw("POST", "/api/admin/kb/documents", { body: form, token: admin.access });
    expect(noFile.status).toBe(422);
    const bad = await upload(
      admin.access,
      { bytes: unique("text"), name: "a.txt" },
      { metadata: "[1,2", source_type: "Bad Type!" },
    );
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual([
      "body.metadata",
      "body.source_type",
    ]);
    const json = await call("POST", "/api/admin/kb/documents", { token: admin.access, json: { file: "x" } });
    expect(json.status).toBe(415);
  });

  it.skipIf(!hasVector)(
    "a PDF without a text layer fails with a clear error, goes to the dead-letter queue, and can be retried",
    async () => {
      const admin = await signedInUser("admin");
      const blank = pdf([""], `Scanned ${crypto.randomUUID()}`);
      const res = await upload(admin.access, { bytes: blank, name: "scan.pdf" });
      expect(res.status).toBe(202);
      const dlq = vi.spyOn(env.KB_INGEST_DLQ, "send");
      expect(await ingestNow(res.body.id)).toBe("failed");
      const row = await documentRow(res.body.id);
      expect(row?.status).toBe("failed");
      expect(row?.error).toMatch(/no text layer/i);
      expect(dlq).toHaveBeenCalledTimes(1);
      dlq.mockRestore();
      const retry = await call("POST", `/api/admin/kb/documents/${res.body.id}/retry`, { token: admin.access });
      expect(retry.status).toBe(202);
      expect(retry.body.status).toBe("queued");
      const again = await call("POST", `/api/admin/kb/documents/${res.body.id}/retry`, { token: admin.access });
      expect(again.status).toBe(409);
    },
  );

  it.skipIf(!hasVector)(
    "a transient failure is retried, then fails for good after KB_INGEST_MAX_ATTEMPTS",
    async () => {
      const admin = await signedInUser("admin");
      const res = await upload(admin.access, { bytes: unique("Transient failure text."), name: "t.txt" });
      const broken: VectorStore = {
        ...createVectorStore(config),
        upsert: async () => Promise.reject(new Error("store down")),
      };
      const job = { documentId: res.body.id, generation: 1 };
      await expect(ingestDocument(env, config, job, 1, { store: broken })).rejects.toThrow("store down");
      expect((await documentRow(res.body.id))?.error).toMatch(/Attempt 1 of 5 failed/);
      expect(await ingestDocument(env, config, job, config.KB_INGEST_MAX_ATTEMPTS, { store: broken })).toBe("failed");
      expect((await documentRow(res.body.id))?.error).toMatch(/gave up after 5 attempts/);
    },
  );

  it.skipIf(!hasVector)("a failure whose message quotes a NUL is still recorded (without it)", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, { bytes: unique("NUL in an error."), name: "e.txt" });
    const broken: VectorStore = {
      ...createVectorStore(config),
      upsert: async () => Promise.reject(new Error("bad byte \u0000 in reply")),
    };
    const job = { documentId: res.body.id, generation: 1 };
    expect(await ingestDocument(env, config, job, config.KB_INGEST_MAX_ATTEMPTS, { store: broken })).toBe("failed");
    expect((await documentRow(res.body.id))?.error).toMatch(/^bad byte \uFFFD in reply/);
  });
});

describe.skipIf(!hasVector)("ingestion is idempotent and atomic", () => {
  it("a redelivered message after a crash mid-write leaves exactly one set of chunks", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, { bytes: unique("Crash test. ".repeat(300)), name: "crash.txt" });
    const crashing: VectorStore = {
      ...createVectorStore(config),
      upsert: async () => Promise.reject(new Error("crash")),
    };
    await expect(
      ingestDocument(env, config, { documentId: res.body.id, generation: 1 }, 1, { store: crashing }),
    ).rejects.toThrow();
    // The crash left chunks of generation 1 behind, invisible: the document is not flipped.
    expect((await documentRow(res.body.id))?.activeGeneration).toBe(0);
    expect(await ingestNow(res.body.id, 2)).toBe("indexed");
    expect(await ingestDocument(env, config, { documentId: res.body.id, generation: 1 }, 3)).toBe("already_indexed");
    const row = await documentRow(res.body.id);
    const counts = await rows<{ n: number; gens: number }>(
      sql`select count(*)::int as n, count(distinct generation)::int as gens from kb_chunks where document_id = ${res.body.id}`,
    );
    expect(counts[0]).toEqual({ n: row?.chunkCount, gens: 1 });
  });

  it("a document deleted during ingestion leaves nothing behind", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, {
      bytes: unique("Delete me while indexing. ".repeat(100)),
      name: "gone.txt",
    });
    const real = createVectorStore(config);
    // Deleted right after the vectors were written, before the flip.
    const deleting: VectorStore = {
      ...real,
      upsert: async (index, items) => {
        await real.upsert(index, items);
        expect((await call("DELETE", `/api/admin/kb/documents/${res.body.id}`, { token: admin.access })).status).toBe(
          204,
        );
      },
    };
    expect(await ingestDocument(env, config, { documentId: res.body.id, generation: 1 }, 1, { store: deleting })).toBe(
      "document_gone",
    );
    expect(await rows(sql`select 1 from kb_chunks where document_id = ${res.body.id}`)).toEqual([]);
    expect(await env.DOCUMENTS.get(`documents/${res.body.id}`)).toBeNull();
    expect((await call("GET", `/api/admin/kb/documents/${res.body.id}`, { token: admin.access })).status).toBe(404);
  });

  it("reindex replaces chunks atomically: concurrent readers see the old set or the new one, never a mix", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, { bytes: unique("Reindex sentence. ".repeat(400)), name: "re.txt" });
    expect(await ingestNow(res.body.id)).toBe("indexed");
    const before = await documentRow(res.body.id);
    const reindex = await call("POST", `/api/admin/kb/documents/${res.body.id}/reindex`, {
      token: admin.access,
      overrides: noConsumer(),
    });
    expect(reindex.status).toBe(202);
    let reading = true;
    const observed: { n: number; gens: number }[] = [];
    const reader = (async () => {
      while (reading) {
        const [seen] = await rows<{
          n: number;
          gens: number;
        }>(sql`select count(*)::int as n, count(distinct c.generation)::int as gens
          from kb_chunks c join kb_documents d on d.id = c.document_id and c.generation = d.active_generation
          where d.id = ${res.body.id}`);
        if (seen) observed.push(seen);
      }
    })();
    expect(await ingestNow(res.body.id)).toBe("indexed");
    reading = false;
    await reader;
    const after = await documentRow(res.body.id);
    expect(after?.activeGeneration).toBe((before?.activeGeneration ?? 0) + 1);
    expect(observed.length).toBeGreaterThan(0);
    for (const seen of observed) expect(seen).toEqual({ n: before?.chunkCount, gens: 1 });
    const all = await rows<{ gens: number }>(
      sql`select count(distinct generation)::int as gens from kb_chunks where document_id = ${res.body.id}`,
    );
    expect(all[0]?.gens).toBe(1);
  });
});

describe.skipIf(!hasVector)("bulk import", () => {
  it("counts received, queued, duplicates and rejected lines; the batch reports progress", async () => {
    const admin = await signedInUser("admin");
    const tag = crypto.randomUUID().slice(0, 8);
    const lines = [
      { external_id: `a-${tag}`, title: "Alpha", text: `Alpha abstract ${tag} about insulin.` },
      { external_id: `b-${tag}`, title: "Beta", text: `Beta abstract ${tag} about metformin.`, tags: ["t1"] },
      { external_id: `c-${tag}`, title: "Copy of alpha", text: `Alpha abstract ${tag} about insulin.` },
    ].map((l) => JSON.stringify(l));
    const body = [...lines, "{not json", JSON.stringify({ title: "no id or text" }), ""].join("\n");
    const queue = capturedQueue();
    const res = await callRaw("POST", "/api/admin/kb/import", {
      body,
      token: admin.access,
      headers: { "content-type": "application/x-ndjson" },
      overrides: queue.bindings,
    });
    expect(res.status).toBe(202);
    const summary = JSON.parse(await res.text());
    expect(summary).toMatchObject({ received: 5, queued: 2, duplicates: 1, rejected: 2 });
    expect(queue.sent).toHaveLength(2);
    expect(summary.errors.map((e: { line: number }) => e.line)).toEqual([4, 5]);
    const ids = (await rows<{ id: string }>(sql`select id from kb_documents where batch_id = ${summary.batch_id}`)).map(
      (r) => r.id,
    );
    for (const id of ids) await ingestNow(id);
    const progress = await call("GET", summary.status_url, { token: admin.access });
    expect(progress.body).toMatchObject({ done: true, percent: 100, status: { ready: 2 } });
  });

  it("refuses a body without any valid record (422) and a non-JSONL type (415)", async () => {
    const admin = await signedInUser("admin");
    const post = (body: string, type: string) =>
      callRaw("POST", "/api/admin/kb/import", { body, token: admin.access, headers: { "content-type": type } });
    expect((await post("nope\n", "application/x-ndjson")).status).toBe(422);
    expect((await post("<xml/>", "application/xml")).status).toBe(415);
  });
});

describe.skipIf(!hasVector)("document titles", () => {
  const cdcName = samples.cdcPdf.name;
  // The real CDC PDF after a PDF editor set its Info (unique per run, so never a duplicate of another test's).
  const cdcWith = (info: string) => withPdfInfo(samples.cdcPdf.bytes, `${info} /Subject (${crypto.randomUUID()})`);
  const titleOf = async (token: string, id: string) =>
    (await call("GET", `/api/admin/kb/documents/${id}`, { token })).body as { title: string; title_source: string };

  it("an upload without a title is named after its file until ingestion finds the document's own", async () => {
    const admin = await signedInUser("admin");
    const markdown = await upload(admin.access, {
      bytes: unique(new TextDecoder().decode(samples.medlineplusMarkdown.bytes)),
      name: samples.medlineplusMarkdown.name,
      type: "text/markdown",
    });
    const titledPdf = await upload(admin.access, {
      bytes: cdcWith(`/Title ${pdfTextString("Guide to Infection Prevention for Outpatient Settings")}`),
      name: cdcName,
      type: "application/pdf",
    });
    const untitledPdf = await upload(admin.access, { bytes: cdcWith(""), name: cdcName, type: "application/pdf" });
    for (const res of [markdown, titledPdf, untitledPdf]) {
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ title: res === markdown ? "medlineplus-hypoglycemia.md" : cdcName });
      expect(res.body.title_source).toBe("file_name");
      expect(await ingestNow(res.body.id)).toBe("indexed");
    }
    expect(await titleOf(admin.access, markdown.body.id)).toMatchObject({
      title: "Hypoglycemia",
      title_source: "document",
    });
    expect(await titleOf(admin.access, titledPdf.body.id)).toMatchObject({
      title: "Guide to Infection Prevention for Outpatient Settings",
      title_source: "document",
    });
    // No Title in the file: the file name stays, as before.
    expect(await titleOf(admin.access, untitledPdf.body.id)).toMatchObject({
      title: cdcName,
      title_source: "file_name",
    });
    // A reindex reads the same title again.
    await call("POST", `/api/admin/kb/documents/${titledPdf.body.id}/reindex`, {
      token: admin.access,
      overrides: noConsumer(),
    });
    expect(await ingestNow(titledPdf.body.id)).toBe("indexed");
    expect((await titleOf(admin.access, titledPdf.body.id)).title).toBe(
      "Guide to Infection Prevention for Outpatient Settings",
    );
  }, 60_000);

  it("a title the admin gives always wins over the document's", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(
      admin.access,
      { bytes: cdcWith(`/Title (Outpatient guide)`), name: cdcName, type: "application/pdf" },
      { title: "Clinic infection handbook" },
    );
    expect(res.body).toMatchObject({ title: "Clinic infection handbook", title_source: "given" });
    expect(await ingestNow(res.body.id)).toBe("indexed");
    expect(await titleOf(admin.access, res.body.id)).toMatchObject({
      title: "Clinic infection handbook",
      title_source: "given",
    });
  }, 30_000);

  it("a PDF Title holding a NUL is stored without it", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, {
      bytes: cdcWith(`/Title ${pdfTextString("Outpatient\u0000guide")}`),
      name: cdcName,
      type: "application/pdf",
    });
    expect(await ingestNow(res.body.id)).toBe("indexed");
    expect((await titleOf(admin.access, res.body.id)).title).toBe("Outpatient guide");
  }, 30_000);
});

// Nested objects: {"a":{"a":…1}}, `depth` levels.
const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;

describe("NUL and deep nesting in uploads and imports", () => {
  const storedBy = async (userId: string) =>
    (await rows<{ n: number }>(sql`select count(*)::int as n from kb_documents where created_by = ${userId}`))[0]?.n;

  it.each([
    ["a NUL in the title", "title", "Hand\u0000hygiene", "body.title"],
    ["a NUL in a tag", "tags", "gloves,ha\u0000nds", "body.tags.1"],
    ["a NUL in external_id", "external_id", "ext-\u0000", "body.external_id"],
    ["a NUL in a metadata value", "metadata", '{"source":{"name":"CDC\\u0000"}}', "body.metadata.source.name"],
    ["a NUL in a metadata key", "metadata", '{"bad\\u0000key":1}', "body.metadata"],
    ["metadata nested 3,000 deep", "metadata", `{"deep":${nested(3000)}}`, "body.metadata.deep"],
  ])("%s → 422 naming the field, nothing stored", async (_, name, value, field) => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, { bytes: unique("NUL test."), name: "n.txt" }, { [name]: value });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].field).toMatch(new RegExp(`^${field.replaceAll(".", "\\.")}(\\.a)*$`));
    expect(await storedBy(admin.id)).toBe(0);
  });

  it("a file name with a NUL (it would become the title) is refused by the runtime's multipart parser: 400", async () => {
    const admin = await signedInUser("admin");
    // Written by hand, as curl would send it: the test's FormData would not carry the NUL.
    const boundary = "nul-boundary";
    const body =
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="guide\u0000.txt"\r\n` +
      `Content-Type: text/plain\r\n\r\n${unique("NUL name.")}\r\n--${boundary}--\r\n`;
    const res = await callRaw("POST", "/api/admin/kb/documents", {
      body,
      token: admin.access,
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    });
    expect(res.status).toBe(400);
    expect(await storedBy(admin.id)).toBe(0);
  });

  it("import: a line with a NUL anywhere, or metadata nested too deep, is rejected naming its field", async () => {
    const admin = await signedInUser("admin");
    const tag = crypto.randomUUID().slice(0, 8);
    const line = (fields: Record<string, unknown>) =>
      JSON.stringify({ external_id: `n-${tag}`, title: "Fine", text: `Fine text ${tag}.`, ...fields });
    const bad = [
      line({ title: "Bad\u0000title" }),
      line({ text: "Bad\u0000text" }),
      line({ external_id: "bad\u0000id" }),
      line({ tags: ["ok", "b\u0000d"] }),
      line({ metadata: { source: { name: "b\u0000d" } } }),
      line({ metadata: { "b\u0000d": 1 } }),
      `{"external_id":"d-${tag}","title":"Deep","text":"Deep ${tag}.","metadata":${nested(3000)}}`,
    ];
    const post = (body: string) =>
      callRaw("POST", "/api/admin/kb/import", {
        body,
        token: admin.access,
        headers: { "content-type": "application/x-ndjson" },
      });
    const res = await post([line({}), ...bad].join("\n"));
    expect(res.status).toBe(202);
    const summary = JSON.parse(await res.text());
    expect(summary).toMatchObject({ received: 8, queued: 1, rejected: 7 });
    expect(
      summary.errors.map((e: { line: number; message: string }) => `${e.line} ${e.message.split(" ")[0]}`),
    ).toEqual([
      "2 title",
      "3 text",
      "4 external_id",
      "5 tags.1",
      "6 metadata.source.name",
      "7 metadata",
      `8 metadata${".a".repeat(64)}`,
    ]);
    expect(summary.errors[0].message).toBe("title must not contain the NUL character (U+0000)");
    expect(await storedBy(admin.id)).toBe(1);

    const none = await post(bad[0]!);
    expect(none.status).toBe(422);
    expect(JSON.parse(await none.text()).errors).toEqual([
      { field: "line 1", message: "title must not contain the NUL character (U+0000)" },
    ]);
  });
});

describe("lifecycle routes, access and audit", () => {
  it("lists with filters and title search; stats; SSE progress until done; viewers read, only admins write", async () => {
    const admin = await signedInUser("admin");
    const viewer = await signedInUser("viewer");
    const title = `Searchable ${crypto.randomUUID().slice(0, 8)}`;
    const res = await upload(
      admin.access,
      { bytes: unique("Listing test text."), name: "l.txt" },
      { title, tags: "alpha,beta" },
    );
    const list = await call("GET", `/api/admin/kb/documents?q=${encodeURIComponent(title)}&tag=beta&status=queued`, {
      token: viewer.access,
    });
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(1);
    expect(list.body.items[0].id).toBe(res.body.id);

    const events = await callRaw("GET", `/api/admin/kb/documents/${res.body.id}/events`, { token: viewer.access });
    expect(events.headers.get("content-type")).toContain("text/event-stream");
    await ingestNow(res.body.id);
    const text = await events.text();
    expect(text).toContain("event: progress");
    expect(text).toMatch(/event: done\ndata: .*"status":"ready"/);

    const stats = await call("GET", "/api/admin/kb/stats", { token: viewer.access });
    expect(stats.body.documents).toBeGreaterThan(0);
    expect(stats.body.by_status.ready).toBeGreaterThan(0);

    expect((await upload(viewer.access, { bytes: unique("viewer"), name: "v.txt" })).status).toBe(403);
    expect((await call("DELETE", `/api/admin/kb/documents/${res.body.id}`, { token: viewer.access })).status).toBe(403);
    expect(
      (await call("POST", `/api/admin/kb/documents/${res.body.id}/reindex`, { token: viewer.access })).status,
    ).toBe(403);
    const user = await signedInUser();
    expect((await call("GET", "/api/admin/kb/documents", { token: user.access })).status).toBe(403);

    expect((await call("DELETE", `/api/admin/kb/documents/${res.body.id}`, { token: admin.access })).status).toBe(204);
    const audit = await rows<{ action: string }>(
      sql`select action from audit_log where target_id = ${res.body.id} order by seq`,
    );
    expect(audit.map((a) => a.action)).toEqual(["kb.document.uploaded", "kb.document.deleted"]);
  });

  it("delete bumps the knowledge-base version that caches key on", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, { bytes: unique("Version test."), name: "v.txt" });
    await ingestNow(res.body.id);
    const [before] = await rows<{ version: number }>(sql`select version from kb_state`);
    await call("DELETE", `/api/admin/kb/documents/${res.body.id}`, { token: admin.access });
    const [after] = await rows<{ version: number }>(sql`select version from kb_state`);
    expect(after?.version).toBeGreaterThan(before?.version ?? 0);
  });
});

describe.skipIf(!hasVector)("embedding models", () => {
  it("refuses to mix models in one index; a rebuild switches the index and re-embeds", async () => {
    const admin = await signedInUser("admin");
    const res = await upload(admin.access, { bytes: unique("Model switch text."), name: "m.txt" });
    // As if the index had been built with another model before EMBEDDING_MODEL changed.
    await db.execute(sql`update kb_embedding_indexes set model = 'old-model', dimensions = 384 where name = 'default'`);
    expect(await ingestNow(res.body.id)).toBe("failed");
    expect((await documentRow(res.body.id))?.error).toMatch(/built with old-model.*rebuild/);

    const rebuilt = await call("POST", "/api/admin/kb/index/rebuild", { token: admin.access });
    expect(rebuilt.status).toBe(202);
    expect(rebuilt.body).toMatchObject({ model: "local-hash-v1", dimensions: 384 });
    expect(rebuilt.body.queued).toBeGreaterThan(0);
    // The real queue consumer re-embeds it (every document was queued again).
    const settled = await untilSettled(res.body.id, 60_000);
    expect(settled).toMatchObject({ status: "ready", embeddingModel: "local-hash-v1", activeGeneration: 1 });
    const viewer = await signedInUser("viewer");
    expect((await call("POST", "/api/admin/kb/index/rebuild", { token: viewer.access })).status).toBe(403);
  }, 90_000);
});

describe.skipIf(!hasVector)("knowledge-base metrics", () => {
  it("counts uploads by format, stage durations, chunks per document and failures by reason", async () => {
    const admin = await signedInUser("admin");
    const writes = vi.spyOn(env.ANALYTICS, "writeDataPoint");
    const md = await upload(admin.access, {
      bytes: unique("# Title\n\nMetrics text."),
      name: "m.md",
      type: "text/markdown",
    });
    await ingestNow(md.body.id);
    const blank = await upload(admin.access, { bytes: pdf([""], `Blank ${crypto.randomUUID()}`), name: "b.pdf" });
    await ingestNow(blank.body.id);
    const seen = writes.mock.calls.map(([p]) => {
      const [name, , ...labels] = p?.blobs ?? [];
      return [name, ...labels].join(":");
    });
    writes.mockRestore();
    expect(seen).toEqual(
      expect.arrayContaining([
        "kb_uploads_total:markdown:upload",
        "kb_uploads_total:pdf:upload",
        "kb_ingest_stage_duration_seconds:extract",
        "kb_ingest_stage_duration_seconds:embed",
        "kb_chunks_per_document",
        "kb_ingest_failures_total:extract:true",
      ]),
    );
  });
});

describe.skipIf(!hasVector)("ingestion SLO metrics", () => {
  it("times a document from its upload to ready once (kb_document_ready_seconds), a reindex from its request", async () => {
    const admin = await signedInUser("admin");
    const queue = capturedQueue();
    const res = await upload(
      admin.access,
      { bytes: unique("Ready time text."), name: "ready.txt" },
      {},
      queue.bindings,
    );
    expect(res.status).toBe(202);
    // As if the upload had been accepted ten minutes ago.
    await db.execute(sql`update kb_documents set created_at = now() - interval '10 minutes' where id = ${res.body.id}`);
    const recording = recordingEnv();
    const [uploaded] = queue.sent;
    expect((await deliverIngestion(recording.env, uploaded)).explicitAcks).toEqual(["m1"]);
    // A redelivery of a message already indexed is no second final state.
    expect((await deliverIngestion(recording.env, uploaded)).explicitAcks).toEqual(["m1"]);
    const afterUpload = recording.samples("kb_document_ready_seconds");
    expect(afterUpload.map((s) => s.labels)).toEqual([["ready"]]);
    expect(afterUpload[0]?.value).toBeGreaterThanOrEqual(600);

    const reindex = await call("POST", `/api/admin/kb/documents/${res.body.id}/reindex`, {
      token: admin.access,
      overrides: queue.bindings,
    });
    expect(reindex.status).toBe(202);
    const requested = queue.sent[1];
    expect(requested?.payload.requestedAt).toEqual(expect.any(String));
    await deliverIngestion(recording.env, requested);
    const all = recording.samples("kb_document_ready_seconds");
    expect(all.map((s) => s.labels)).toEqual([["ready"], ["ready"]]);
    // Timed from the reindex request, not from the upload ten minutes before it.
    expect(all[1]?.value).toBeLessThan(600);
    expect(recording.samples("queue_messages_total").map((s) => s.labels)).toEqual([
      ["kb-ingest", "ack"],
      ["kb-ingest", "ack"],
      ["kb-ingest", "ack"],
    ]);
  });

  it("a retried attempt is not final; the last one is timed as failed, dead-lettered and counted once", async () => {
    const admin = await signedInUser("admin");
    const queue = capturedQueue();
    const res = await upload(admin.access, { bytes: unique("Dead letter text."), name: "dl.txt" }, {}, queue.bindings);
    const broken: VectorStore = {
      ...createVectorStore(config),
      upsert: async () => Promise.reject(new Error("store down")),
    };
    const recording = recordingEnv();
    const job = { documentId: res.body.id, generation: 1 };
    await expect(ingestDocument(recording.env, config, job, 1, { store: broken })).rejects.toThrow("store down");
    expect(recording.samples("kb_document_ready_seconds")).toEqual([]);
    expect(recording.samples("kb_dead_letters_total")).toEqual([]);
    const last = config.KB_INGEST_MAX_ATTEMPTS;
    expect(await ingestDocument(recording.env, config, job, last, { store: broken })).toBe("failed");
    // The acknowledgement was lost: the same message again neither fails the document nor dead-letters it twice.
    expect(await ingestDocument(recording.env, config, job, last, { store: broken })).toBe("already_failed");
    expect(recording.samples("kb_document_ready_seconds").map((s) => s.labels)).toEqual([["failed"]]);
    expect(recording.samples("kb_dead_letters_total").map((s) => s.labels)).toEqual([["kb-ingest"]]);
    expect(recording.deadLetters).toHaveLength(1);
  });

  it("the consumer counts a dead-lettered delivery as outcome dead_letter in queue_messages_total", async () => {
    const admin = await signedInUser("admin");
    const queue = capturedQueue();
    const blank = pdf([""], `Scanned ${crypto.randomUUID()}`);
    const res = await upload(admin.access, { bytes: blank, name: "scan.pdf" }, {}, queue.bindings);
    expect(res.status).toBe(202);
    const recording = recordingEnv();
    // No text layer: a permanent failure, final at the first attempt.
    const result = await deliverIngestion(recording.env, queue.sent[0]);
    expect(result.explicitAcks).toEqual(["m1"]);
    expect(result.retryMessages).toEqual([]);
    expect(recording.samples("queue_messages_total").map((s) => s.labels)).toEqual([["kb-ingest", "dead_letter"]]);
    expect(recording.samples("kb_dead_letters_total").map((s) => s.labels)).toEqual([["kb-ingest"]]);
    expect(recording.samples("kb_document_ready_seconds").map((s) => s.labels)).toEqual([["failed"]]);
    expect(recording.deadLetters).toEqual([
      expect.objectContaining({ payload: expect.objectContaining({ documentId: res.body.id }) }),
    ]);
    expect((await documentRow(res.body.id))?.status).toBe("failed");
  });

  it("labels the queue as wrangler.toml names the consumer's (the dead-letter SLO selects it)", () => {
    expect(wranglerToml).toMatch(new RegExp(`\\[\\[queues\\.consumers\\]\\]\\s*queue = "${INGEST_QUEUE}"`));
  });
});

describe("knowledge-base gauges", () => {
  const newDocument = (status: "queued" | "processing" | "ready" | "failed", chunkCount: number) => {
    const id = crypto.randomUUID();
    return {
      id,
      title: `Census ${id}`,
      mimeType: "text/plain",
      byteSize: 1,
      sha256: id,
      r2Key: `documents/${id}`,
      status,
      chunkCount,
    };
  };

  it("counts documents by status, 0 included, and the chunks of their active generations, in one query", async () => {
    let seen: { census: DocumentCensus; existing: number } | undefined;
    await withPoolDb(config, (pool) =>
      pool.transaction(async (tx) => {
        // Holds every document still (the real consumer waits for this transaction) with known values, then
        // rolls back.
        const held = await tx.execute(sql`update kb_documents set status = 'ready', chunk_count = 1`);
        await tx
          .insert(documents)
          .values([
            newDocument("queued", 0),
            newDocument("queued", 0),
            newDocument("failed", 0),
            newDocument("ready", 5),
          ]);
        seen = { census: await documentCensus(tx), existing: held.rowCount ?? Number.NaN };
        tx.rollback();
      }),
    ).catch((error) => {
      if (!(error instanceof TransactionRollbackError)) throw error;
    });
    const existing = seen?.existing ?? Number.NaN;
    expect(seen?.census).toEqual({
      documents: { queued: 2, processing: 0, ready: existing + 1, failed: 1 },
      chunks: existing + 5,
    });
  });

  it("the kb-gauges job sets kb_documents for every status and kb_chunks, every 5 minutes", async () => {
    expect(cronJobs["*/5 * * * *"]["kb-gauges"]).toBe(recordKbGauges);
    const recording = recordingEnv();
    await recordKbGauges(recording.env);
    const byStatus = recording.samples("kb_documents");
    expect(byStatus.map((s) => s.labels)).toEqual([["queued"], ["processing"], ["ready"], ["failed"]]);
    // Nothing adds or removes documents while the test runs (the consumer only changes their status).
    const [total] = await rows<{ n: number }>(sql`select count(*)::int as n from kb_documents`);
    expect(byStatus.reduce((sum, s) => sum + s.value, 0)).toBe(total?.n);
    const chunks = recording.samples("kb_chunks");
    expect(chunks).toHaveLength(1);
    expect(Number.isInteger(chunks[0]?.value) && (chunks[0]?.value ?? -1) >= 0).toBe(true);
  });
});

describe.skipIf(!hasVector)("stuck documents", () => {
  it("queues again a document whose message was lost, and leaves fresh ones alone", async () => {
    const admin = await signedInUser("admin");
    const lost = await upload(admin.access, { bytes: unique("Lost message text."), name: "lost.txt" });
    const fresh = await upload(admin.access, { bytes: unique("Fresh message text."), name: "fresh.txt" });
    await db.execute(sql`update kb_documents set status = 'processing', updated_at = now() - interval '31 minutes'
      where id = ${lost.body.id}`);
    const sends = vi.spyOn(env.KB_INGEST, "sendBatch");
    const { requeueStuckDocuments } = await import("../../src/kb/jobs.ts");
    expect(await requeueStuckDocuments(env)).toBeGreaterThanOrEqual(1);
    const payloads = sends.mock.calls.flatMap(([batch]) =>
      [...batch].map((m) => (m.body as { payload: { documentId: string; requestedAt?: string } }).payload),
    );
    sends.mockRestore();
    const sent = payloads.map((p) => p.documentId);
    expect(sent).toContain(lost.body.id);
    expect(sent).not.toContain(fresh.body.id);
    // Its ready time keeps counting from its last change (31 minutes ago), not from the requeue.
    const requestedAt = payloads.find((p) => p.documentId === lost.body.id)?.requestedAt ?? "";
    expect(Date.now() - Date.parse(requestedAt)).toBeGreaterThanOrEqual(31 * 60_000);
    expect((await documentRow(lost.body.id))?.status).toBe("queued");
  });
});
