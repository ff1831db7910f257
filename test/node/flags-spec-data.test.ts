// The project's copy of Unleash specification files (../shared/data/unleash-spec) must equal the npm package's,
// so the Workers suite, which runs every package file, covers them too. The folder is absent on some machines.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const dataDir = fileURLToPath(new URL("../../../shared/data/unleash-spec/", import.meta.url));
const packageDir = dirname(
  createRequire(import.meta.url).resolve("@unleash/client-specification/specifications/index.json"),
);
const present = existsSync(dataDir);
const files = present ? readdirSync(dataDir).filter((name) => name.endsWith(".json")) : [];
const index = JSON.parse(readFileSync(join(packageDir, "index.json"), "utf8")) as string[];

describe.skipIf(!present)(`project spec data equals @unleash/client-specification (skipped: ${dataDir} absent)`, () => {
  it("holds specification files, each listed in the package's index", () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((name) => !index.includes(name))).toEqual([]);
  });

  it.each(files)("%s equals the package's file", (name) => {
    const ours = readFileSync(join(dataDir, name));
    const theirs = readFileSync(join(packageDir, name));
    if (!ours.equals(theirs)) expect(JSON.parse(ours.toString("utf8"))).toEqual(JSON.parse(theirs.toString("utf8")));
  });
});
