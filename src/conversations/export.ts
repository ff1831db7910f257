import type { Citation } from "../rag/citations.ts";
import type { ConversationRow, MessageRow } from "./store.ts";

// Quote marks and line breaks would break the blockquote a snippet is shown in.
const oneLine = (text: string) => text.replace(/\s+/g, " ").trim();

/** A conversation's visible thread as Markdown: each answer followed by its numbered sources. */
export function exportMarkdown(conversation: ConversationRow, thread: MessageRow[]): string {
  const lines = [`# ${oneLine(conversation.title)}`, "", `Exported ${new Date().toISOString()}`, ""];
  for (const message of thread) {
    const who = message.role === "user" ? "You" : "Assistant";
    lines.push(`## ${who} · ${message.createdAt.toISOString()}`, "", message.content.trim(), "");
    const citations = message.citations as Citation[];
    if (citations.length) {
      lines.push("Sources:", "");
      for (const c of citations) {
        const where = c.page !== null ? `, page ${c.page}` : "";
        lines.push(`${c.index}. ${oneLine(c.title)}${where}: "${oneLine(c.snippet)}"`);
      }
      lines.push("");
    }
  }
  return `${lines.join("\n").trimEnd()}\n`;
}
