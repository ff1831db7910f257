import { normaliseLine } from "./normalise.ts";
import type { TextBlock } from "./port.ts";

/**
 * Collects text into one block per section, each under the path of headings above it.
 * A heading of level N closes every open heading of level N or deeper (h3 after h2 nests, h2 after h3 does not).
 */
export class SectionBuilder {
  readonly #blocks: TextBlock[] = [];
  readonly #path: { level: number; text: string }[] = [];
  #text = "";

  heading(level: number, text: string): void {
    const title = normaliseLine(text);
    if (!title) return;
    this.#flush();
    while (this.#path.length > 0 && this.#path.at(-1)!.level >= level) this.#path.pop();
    this.#path.push({ level, text: title });
  }

  text(text: string): void {
    this.#text += text;
  }

  lineBreak(): void {
    this.#text += "\n";
  }

  paragraphBreak(): void {
    this.#text += "\n\n";
  }

  get hasText(): boolean {
    return this.#blocks.length > 0 || /\S/.test(this.#text);
  }

  finish(): TextBlock[] {
    this.#flush();
    return this.#blocks;
  }

  #flush(): void {
    if (/\S/.test(this.#text)) this.#blocks.push({ text: this.#text, headingPath: this.#path.map((h) => h.text) });
    this.#text = "";
  }
}
