import { decodeHTML } from "entities";
import { normaliseLine } from "./normalise.ts";
import type { ExtractedDocument } from "./port.ts";
import { SectionBuilder } from "./sections.ts";

const FRONT_MATTER = /^---[ \t]*\n([\s\S]*?)\n(?:---|\.\.\.)[ \t]*(?:\n|$)/;
const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const SETEXT_UNDERLINE = /^ {0,3}(=+|-+)[ \t]*$/;
const THEMATIC_BREAK = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const TABLE_DELIMITER_ROW = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*$/;
const LINK_DEFINITION = /^ {0,3}\[[^\]]+\]:[ \t]*\S/;
const LIST_OR_QUOTE_MARKER = /^[ \t]*(?:>[ \t]?)*(?:[-*+][ \t]+)?/;
const STARTS_LIST_OR_QUOTE = /^[ \t]*(?:>|[-*+][ \t])/;
// Comments, and scripts or styles embedded as raw HTML: never text.
const NOT_TEXT = /<!--[\s\S]*?-->|<(script|style)\b[\s\S]*?<\/\1\s*>/gi;

/** Text of a Markdown document, one block per heading section (ATX and setext), markup removed. */
export function extractMarkdown(markdown: string): ExtractedDocument {
  const { body, title: frontMatterTitle } = splitFrontMatter(markdown.replace(/\r\n?/g, "\n"));
  const builder = new SectionBuilder();
  let firstH1: string | undefined;
  const heading = (level: number, text: string) => {
    if (level === 1) firstH1 ??= normaliseLine(text);
    builder.heading(level, text);
  };
  let paragraph: string[] = [];
  const flush = () => {
    if (paragraph.length > 0) builder.text(paragraph.map(lineText).join("\n"));
    builder.paragraphBreak();
    paragraph = [];
  };
  let fence: { marker: string; lines: string[] } | undefined;

  for (const line of body.replace(NOT_TEXT, "").split("\n")) {
    if (fence) {
      // Code keeps its text and its line breaks; only the fences go.
      if (line.trim().startsWith(fence.marker) && line.trim().replaceAll(fence.marker[0]!, "") === "") {
        builder.text(fence.lines.join("\n"));
        builder.paragraphBreak();
        fence = undefined;
      } else {
        fence.lines.push(line);
      }
      continue;
    }
    const fenceOpen = FENCE.exec(line);
    const atx = ATX_HEADING.exec(line);
    const setext = SETEXT_UNDERLINE.exec(line);
    if (fenceOpen) {
      flush();
      fence = { marker: fenceOpen[1]!, lines: [] };
    } else if (atx) {
      flush();
      heading(atx[1]!.length, inlineText(atx[2] ?? ""));
    } else if (setext && paragraph.length > 0 && !STARTS_LIST_OR_QUOTE.test(paragraph[0]!)) {
      // "Text" over "---" is a heading; under a list item or a quote the "---" is a rule.
      heading(setext[1]!.startsWith("=") ? 1 : 2, paragraph.map(lineText).join(" "));
      paragraph = [];
    } else if (THEMATIC_BREAK.test(line) || line.trim() === "") {
      flush();
    } else if (!TABLE_DELIMITER_ROW.test(line) && !LINK_DEFINITION.test(line)) {
      paragraph.push(line);
    }
  }
  if (fence) builder.text(fence.lines.join("\n"));
  flush();

  const blocks = builder.finish();
  const title = frontMatterTitle || firstH1;
  return title ? { title, blocks } : { blocks };
}

function splitFrontMatter(markdown: string): { body: string; title?: string } {
  const match = FRONT_MATTER.exec(markdown);
  if (!match) return { body: markdown };
  const title = /^title:[ \t]*(.+)$/m
    .exec(match[1]!)?.[1]
    ?.replace(/^(["'])(.*)\1$/, "$2")
    .trim();
  const body = markdown.slice(match[0].length);
  return title ? { body, title } : { body };
}

// One source line: bullets and quote markers go (ordered numbers stay: "step 2" matters), table rows keep cells.
function lineText(line: string): string {
  let text = line.replace(LIST_OR_QUOTE_MARKER, "");
  if (/^\|.*\|[ \t]*$/.test(text.trim())) {
    text = text
      .trim()
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim())
      .join(" | ");
  }
  return inlineText(text);
}

/** Inline markup removed: images dropped, links keep their text, emphasis and code markers go. */
function inlineText(text: string): string {
  return text
    .split(/(`+[^`]*?`+)/)
    .map((part, i) => (i % 2 === 1 ? part.replace(/^`+ ?| ?`+$/g, "") : inlineProse(part)))
    .join("");
}

function inlineProse(text: string): string {
  const plain = text
    .replace(/!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])/g, "")
    .replace(/\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])/g, "$1")
    .replace(/<((?:https?|mailto):[^>\s]+)>/g, "$1")
    .replace(/<\/?[A-Za-z][^>]*>/g, "")
    // Emphasis markers touch a word on one side only; "snake_case" and "2*3" keep theirs.
    .replace(/(?<![\p{L}\p{N}\\])(?:\*+|_+|~~)(?=\S)|(?<=[^\s\\])(?:\*+|_+|~~)(?![\p{L}\p{N}])/gu, "")
    .replace(/\\([!-/:-@[-`{-~])/g, "$1");
  return decodeHTML(plain);
}
