// `ask`: a question answered from the knowledge base (POST /api/rag/query), streamed as it is written.
import { type Command, type Json, options, UsageError } from "./command.ts";
import { failed } from "./http.ts";
import { signedIn } from "./session.ts";

// A cloud model can think for a while before its first word; the wait restarts with every word.
const IDLE_TIMEOUT_MS = 60_000;

/** "[1] Title, page 3 (document id)". */
const citation = (c: Json) =>
  `[${String(c.index)}] ${String(c.title)}${c.page === null || c.page === undefined ? "" : `, page ${String(c.page)}`}` +
  ` (${String(c.document_id)})`;

export const ask: Command = {
  summary: "ask a question: the answer streamed from the knowledge base, then its sources",
  usage:
    "ask QUESTION [--tag TAG ...] [--source-type TYPE] [--conversation ID] [--url URL]\n" +
    "  The answer goes to standard output as it is written, then one line per cited source ([n] title, page).\n" +
    "  --conversation answers with that conversation's recent history (it is not stored there).",
  async run(args, io) {
    const { values, positionals } = options(
      args,
      { tag: { type: "string", multiple: true }, "source-type": { type: "string" }, conversation: { type: "string" } },
      true,
    );
    const query = positionals.join(" ").trim();
    if (!query) throw new UsageError("give the question");
    const filters = {
      ...(values.tag ? { tags: values.tag } : {}),
      ...(values["source-type"] ? { source_type: values["source-type"] } : {}),
    };
    const api = await signedIn(values.url, io);
    if (!api) return 2;
    const answer = await api.events({
      method: "POST",
      path: "/api/rag/query",
      json: {
        query,
        stream: true,
        ...(values.conversation ? { conversation_id: values.conversation } : {}),
        ...(Object.keys(filters).length ? { filters } : {}),
      },
      timeoutMs: IDLE_TIMEOUT_MS,
    });
    if (answer.reply) return failed(io, answer.reply);
    let citations: Json[] = [];
    let wrote = false;
    // The answer's line ends before anything else is said, whether the answer ends or breaks off.
    const endLine = () => {
      if (wrote) io.write("\n");
      wrote = false;
    };
    try {
      for await (const { event, data } of answer.events) {
        const payload = JSON.parse(data) as Json;
        if (event === "delta") {
          io.write(String(payload.text ?? ""));
          wrote = true;
        } else if (event === "citations") {
          citations = (payload.citations ?? []) as Json[];
        } else if (event === "error") {
          endLine();
          io.err(`The answer failed: ${String(payload.code)}: ${String(payload.message)}`);
          return 1;
        } else if (event === "done") {
          endLine();
          if (citations.length) io.out("\nSources:");
          for (const c of citations) io.out(citation(c));
          if (payload.disclaimer) io.out(`\n${String(payload.disclaimer)}`);
          return 0;
        }
      }
    } finally {
      endLine();
    }
    io.err("The answer stopped before it was complete.");
    return 1;
  },
};
