/** A positioned run of text on a PDF page (PDF.js text content; y grows upwards). */
export interface PdfTextItem {
  str: string;
  x: number;
  y: number;
  width: number;
  fontSize: number;
  hasEOL: boolean;
}

/**
 * Lines of one page in content order; "" marks a paragraph break. PDF.js gives runs of glyphs, not words:
 * a gap between runs becomes a space, a change of baseline a new line, a gap of more than a line a new paragraph.
 */
export function pageLines(items: PdfTextItem[]): string[] {
  const lines: string[] = [];
  let line = "";
  let previous: PdfTextItem | undefined;
  let endOfLine = false;
  for (const item of items) {
    if (item.hasEOL) endOfLine = true;
    if (item.str === "") continue;
    if (previous) {
      const size = Math.max(item.fontSize, previous.fontSize, 1);
      const rise = previous.y - item.y;
      if (endOfLine || Math.abs(rise) > size / 2) {
        lines.push(line);
        // Moving up the page means a new column, a header or a footer: a new paragraph too.
        if (rise > size * 1.6 || rise < -size / 2) lines.push("");
        line = "";
      } else {
        const gap = item.x - (previous.x + previous.width);
        if ((gap > size * 0.15 || gap < -size) && !line.endsWith(" ") && !item.str.startsWith(" ")) line += " ";
      }
    }
    line += item.str;
    previous = item;
    endOfLine = false;
  }
  lines.push(line);
  return lines.map((l) => l.trim()).filter((l, i, all) => l !== "" || (i > 0 && all[i - 1] !== ""));
}

/**
 * Drops running headers and footers: lines at the top or bottom of a page that recur, numbers aside,
 * on at least half of the pages ("Version 2.3 - September 2016", "Page 6 of 15").
 */
export function dropRunningLines(pages: string[][]): string[][] {
  if (pages.length < 3) return pages;
  const edge = 3;
  const key = (line: string) => line.replace(/\d+/g, "#");
  const edges = (lines: string[]) => {
    const text = lines.filter((l) => l !== "");
    return new Set([...text.slice(0, edge), ...text.slice(-edge)].map(key));
  };
  const counts = new Map<string, number>();
  for (const page of pages) for (const k of edges(page)) counts.set(k, (counts.get(k) ?? 0) + 1);
  const running = new Set([...counts].filter(([, n]) => n >= Math.max(3, pages.length / 2)).map(([k]) => k));
  return pages.map((lines) => {
    const text = lines.filter((l) => l !== "");
    const atEdge = new Set([...text.slice(0, edge), ...text.slice(-edge)]);
    return lines.filter((l) => !(atEdge.has(l) && running.has(key(l))));
  });
}

/** A page's text: lines joined, paragraphs separated by a blank line. */
export const pageText = (lines: string[]) => lines.join("\n").replace(/\n{3,}/g, "\n\n");
