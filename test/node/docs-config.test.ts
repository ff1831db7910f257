// The configuration reference (docs/configuration.md) is generated from the config schema and stays fresh; the
// hand-written docs and wrangler.toml name only variables the schema has, and [vars] holds no secret.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BEGIN_MARKER, DOC_PATH, END_MARKER, renderDoc, variableDocs } from "../../scripts/docs-config.ts";
import { configVariableNames } from "../../src/config.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string) => readFileSync(join(root, path), "utf8");
const wranglerToml = read("wrangler.toml");

/** Keys of a top-level TOML table such as [vars] (wrangler.toml keeps it flat: `NAME = "value"`). */
function tableKeys(toml: string, table: string): string[] {
  const start = toml.indexOf(`\n[${table}]\n`);
  if (start < 0) return [];
  const rest = toml.slice(start + table.length + 4);
  const body = rest.slice(0, rest.search(/^\[/m) < 0 ? undefined : rest.search(/^\[/m));
  return [...body.matchAll(/^([A-Z][A-Z0-9_]*)\s*=/gm)].map((m) => m[1] ?? "");
}

const bindings = [...wranglerToml.matchAll(/^(?:binding|name)\s*=\s*"([A-Z][A-Z0-9_]*)"/gm)].map((m) => m[1]);
// Names that look like variables and are not: what npm run dev alone reads, and error codes.
const notVariables = new Set(["PORT", "REDIS_URL", "BAD_ENVIRONMENT"]);

/** Backticked UPPER_SNAKE names in a text (wildcards such as `CACHE_TTL_*` excluded). */
const namesIn = (text: string) =>
  new Set([...text.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`/g)].map((m) => m[1] ?? ""));

function readmeConfigurationSection(): string {
  const readme = read("README.md");
  const start = readme.indexOf("\n## Configuration\n");
  expect(start, "README.md has a Configuration section").toBeGreaterThan(0);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe("docs/configuration.md", () => {
  it("is what `npm run docs:config` generates", () => {
    const current = read(DOC_PATH);
    expect(
      current === renderDoc(current),
      `${DOC_PATH} is stale: run \`npm run docs:config\` and commit the result`,
    ).toBe(true);
  });

  it("describes every variable of the schema", () => {
    const docs = variableDocs();
    expect(docs.map((v) => v.name)).toEqual(configVariableNames);
    expect(docs.filter((v) => v.description.trim() === "").map((v) => v.name)).toEqual([]);
  });

  it("names, outside the generated table, only variables the schema has", () => {
    const doc = read(DOC_PATH);
    const prose = doc.slice(0, doc.indexOf(BEGIN_MARKER)) + doc.slice(doc.indexOf(END_MARKER));
    const unknown = [...namesIn(prose)].filter(
      (n) => !configVariableNames.includes(n as never) && !bindings.includes(n) && !notVariables.has(n),
    );
    expect(unknown, `${DOC_PATH} names variables src/config.ts does not have`).toEqual([]);
  });
});

describe("README.md Configuration", () => {
  it("names only variables the schema has, and links the generated reference", () => {
    const section = readmeConfigurationSection();
    const unknown = [...namesIn(section)].filter(
      (n) => !configVariableNames.includes(n as never) && !bindings.includes(n) && !notVariables.has(n),
    );
    expect(unknown, "README.md's Configuration section names variables src/config.ts does not have").toEqual([]);
    expect(section).toContain("docs/configuration.md");
  });
});

describe("wrangler.toml [vars]", () => {
  const vars = tableKeys(wranglerToml, "vars");

  it("sets only schema variables, and no secret", () => {
    expect(vars.length).toBeGreaterThan(0);
    expect(vars.filter((n) => !configVariableNames.includes(n as never))).toEqual([]);
    const secrets = new Set(
      variableDocs()
        .filter((v) => v.secret)
        .map((v) => v.name),
    );
    expect(
      vars.filter((n) => secrets.has(n)),
      "secrets belong in `wrangler secret put`",
    ).toEqual([]);
  });

  it("is listed with every binding of wrangler.toml in README.md's Configuration", () => {
    const section = readmeConfigurationSection();
    const listed = bindings.filter((b) => b && !section.includes(`\`${b}\``));
    expect(listed, "bindings of wrangler.toml missing from README.md's Configuration section").toEqual([]);
  });
});
