// How the commands print values: one line per item, in aligned columns.
import type { Json } from "./command.ts";
import type { Reply } from "./http.ts";
import type { Api } from "./session.ts";

/** A value for one column: quoted as JSON when it holds a space, a comma or a control character. */
export const cell = (value: unknown): string => {
  const text = String(value);
  return /[\s,"\p{Cc}]/u.test(text) || text === "" ? JSON.stringify(text) : text;
};

/** Rows as aligned columns (the last one unpadded). */
export function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length))) ?? [];
  return rows.map((row) =>
    row
      .map((value, i) => (i === row.length - 1 ? value : value.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}

/**
 * Every item of a paginated admin list (`items`, `total`) at `path`, page after page of `pageSize`; `filters` go on
 * every page's query, those unset or empty left out.
 */
export async function allPages(
  api: Pick<Api, "call">,
  path: string,
  filters: Record<string, string | undefined>,
  pageSize = 200,
): Promise<{ items: Json[]; failure?: Reply }> {
  const items: Json[] = [];
  for (let page = 1; ; page++) {
    const query = new URLSearchParams({ page: String(page), page_size: String(pageSize) });
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    const res = await api.call("GET", `${path}?${query}`);
    if (!res.ok) return { items, failure: res };
    const batch = (res.json.items ?? []) as Json[];
    items.push(...batch);
    if (batch.length === 0 || items.length >= Number(res.json.total ?? 0)) return { items };
  }
}
