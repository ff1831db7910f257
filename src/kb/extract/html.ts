import { decodeHTML } from "entities";
import { normaliseLine } from "./normalise.ts";
import type { ExtractedDocument } from "./port.ts";
import { SectionBuilder } from "./sections.ts";

// Page furniture and non-text: never part of the main text.
const SKIPPED_TAGS = new Set([
  "script",
  "style",
  "noscript",
  "template",
  "nav",
  "aside",
  "form",
  "svg",
  "math",
  "iframe",
  "object",
  "canvas",
  "select",
  "button",
  "dialog",
]);
// Site header and footer; inside <main>/<article> they are the article's own (its title, its byline), and stay.
const PAGE_FURNITURE = new Set(["header", "footer"]);
const SKIPPED_ROLES = new Set(["navigation", "banner", "contentinfo", "search", "complementary"]);
const MAIN_TAGS = new Set(["main", "article"]);
const BLOCK_TAGS = new Set([
  "p",
  "div",
  "section",
  "article",
  "main",
  "header",
  "footer",
  "li",
  "dl",
  "dt",
  "dd",
  "ul",
  "ol",
  "blockquote",
  "pre",
  "figure",
  "figcaption",
  "table",
  "caption",
  "address",
  "details",
  "summary",
  "center",
  "hr",
]);
// Elements without an end tag: HTMLRewriter's onEndTag throws for them.
const VOID_TAGS = new Set([
  "area",
  "base",
  "br",
  "col",
  "embed",
  "hr",
  "img",
  "input",
  "link",
  "meta",
  "source",
  "track",
  "wbr",
]);

/**
 * The main text of an HTML page or fragment, one block per heading section.
 * Streams through the runtime's HTMLRewriter; text outside <main>/<article> is dropped when the page has one.
 */
export async function extractHtml(html: string): Promise<ExtractedDocument> {
  const state = new HtmlTextState();
  await new HTMLRewriter()
    .on("*", { element: (element) => state.element(element) })
    .onDocument({ text: (chunk) => state.text(chunk) })
    .transform(new Response(html))
    .arrayBuffer();
  return state.finish();
}

class HtmlTextState {
  readonly #all = new SectionBuilder();
  // A second copy of what is inside <main>/<article>, so that page chrome can be dropped at the end.
  readonly #main = new SectionBuilder();
  #skipping = false;
  #mainDepth = 0;
  #preDepth = 0;
  #capture: { kind: "title" | "heading"; level: number; text: string } | undefined;
  #title: string | undefined;
  #firstH1: string | undefined;
  #cellIndex = 0;
  #cellDepth = 0;
  #pending = "";

  element(element: Element): void {
    if (this.#skipping) return;
    const tag = element.tagName.toLowerCase();
    if (VOID_TAGS.has(tag)) {
      if (tag === "br") this.#each((b) => b.lineBreak());
      if (tag === "hr") this.#each((b) => b.paragraphBreak());
      return;
    }
    if (this.#isSkipped(element, tag)) {
      if (onEnd(element, [() => (this.#skipping = false)])) this.#skipping = true;
      return;
    }
    const heading = /^h([1-6])$/.exec(tag);
    if (heading || tag === "title") {
      this.#capture = { kind: heading ? "heading" : "title", level: Number(heading?.[1] ?? 0), text: "" };
      onEnd(element, [() => this.#endCapture()]);
      return;
    }
    const atEnd: (() => void)[] = [];
    if (BLOCK_TAGS.has(tag)) {
      // Paragraphs inside a table cell (as Word writes them) would tear the row apart.
      const separate = () => this.#each((b) => (this.#cellDepth > 0 ? b.text(" ") : b.paragraphBreak()));
      separate();
      atEnd.push(separate);
    } else if (tag === "tr") {
      this.#cellIndex = 0;
      this.#each((b) => b.lineBreak());
    } else if (tag === "td" || tag === "th") {
      // Cells of a row stay on one line, so a row reads as a record.
      if (this.#cellIndex++ > 0) this.#each((b) => b.text(" | "));
      this.#cellDepth++;
      atEnd.push(() => this.#cellDepth--);
    }
    if (MAIN_TAGS.has(tag) || element.getAttribute("role") === "main") {
      this.#mainDepth++;
      atEnd.push(() => this.#mainDepth--);
    }
    if (tag === "pre") {
      this.#preDepth++;
      atEnd.push(() => this.#preDepth--);
    }
    onEnd(element, atEnd);
  }

  // Text arrives in chunks that may split an entity: decode each text node whole.
  text(chunk: Text): void {
    if (this.#skipping) return;
    this.#pending += chunk.text;
    if (!chunk.lastInTextNode) return;
    const raw = this.#pending;
    this.#pending = "";
    const text = decodeHTML(this.#preDepth > 0 ? raw : raw.replace(/[ \t\n\r\f]+/g, " "));
    if (this.#capture) this.#capture.text += text;
    else this.#each((b) => b.text(text));
  }

  finish(): ExtractedDocument {
    const blocks = this.#main.hasText ? this.#main.finish() : this.#all.finish();
    const title = this.#title || this.#firstH1;
    return title ? { title, blocks } : { blocks };
  }

  #isSkipped(element: Element, tag: string): boolean {
    if (SKIPPED_TAGS.has(tag)) return true;
    if (PAGE_FURNITURE.has(tag) && this.#mainDepth === 0) return true;
    if (element.hasAttribute("hidden")) return true;
    if (element.getAttribute("aria-hidden")?.toLowerCase() === "true") return true;
    return SKIPPED_ROLES.has(element.getAttribute("role")?.toLowerCase() ?? "");
  }

  #endCapture(): void {
    const capture = this.#capture;
    this.#capture = undefined;
    if (!capture) return;
    const text = normaliseLine(capture.text);
    if (capture.kind === "title") {
      this.#title ||= text;
      return;
    }
    if (capture.level === 1) this.#firstH1 ||= text;
    this.#each((b) => b.heading(capture.level, text));
  }

  // Everything goes to the whole-page builder; what is inside <main>/<article> goes to the main one too.
  #each(action: (builder: SectionBuilder) => void): void {
    action(this.#all);
    if (this.#mainDepth > 0) action(this.#main);
  }
}

/**
 * Runs the actions at the element's end tag; false when it has none (e.g. a self-closing SVG child).
 * HTMLRewriter keeps only the last handler an element is given, so all actions go in one.
 */
function onEnd(element: Element, actions: (() => unknown)[]): boolean {
  if (actions.length === 0) return true;
  try {
    element.onEndTag(() => {
      for (const action of actions) action();
    });
    return true;
  } catch {
    return false;
  }
}
