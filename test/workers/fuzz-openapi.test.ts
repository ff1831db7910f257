import { beforeAll, describe, expect, it } from "vitest";
import { app, callRaw, serve } from "./harness.ts";
import { signedInUser, type TestUser } from "./identity-helpers.ts";

// Every operation of /openapi.json, as an admin (who reaches the most code), with the input a careless or
// hostile client sends: NUL characters, `null` and other non-object JSON, deep nesting, huge strings and
// wrong types, in the path, the query and the body. None of it may get a 5xx.

interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
}
interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  schema?: Schema;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
}
interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas?: Record<string, Schema> };
}

const NUL = "bad\u0000value";
const HUGE = "x".repeat(300_000);
const nested = (levels: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
};

let doc: OpenApi;
const resolve = (schema: Schema | undefined): Schema => {
  if (!schema) return {};
  if (schema.$ref) return resolve(doc.components.schemas?.[schema.$ref.split("/").at(-1) ?? ""]);
  const parts = schema.allOf ?? schema.anyOf ?? schema.oneOf;
  if (parts && !schema.properties) return { properties: Object.assign({}, ...parts.map((p) => resolve(p).properties)) };
  return schema;
};

/** A value of the wrong type for a property of this schema. */
const wrongType = (schema: Schema | undefined): unknown => {
  const type = [resolve(schema).type].flat()[0];
  if (type === "string") return 12345;
  if (type === "number" || type === "integer") return "not a number";
  if (type === "boolean") return "yes";
  if (type === "array") return { not: "an array" };
  if (type === "object") return ["not", "an", "object"];
  return null;
};

interface Probe {
  label: string;
  path: string;
  query?: string;
  body?: string;
}

function probesFor(path: string, operation: Operation): Probe[] {
  const parameters = operation.parameters ?? [];
  const fill = (value: string) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) =>
      encodeURIComponent(value === "id" ? (/id$/i.test(name) ? crypto.randomUUID() : "fuzz-key") : value),
    );
  const plain = fill("id");
  const query = (value: (p: Parameter) => string) =>
    parameters
      .filter((p) => p.in === "query")
      .map((p) => `${encodeURIComponent(p.name)}=${encodeURIComponent(value(p))}`)
      .join("&");
  const probes: Probe[] = [];
  if (path.includes("{")) probes.push({ label: "NUL in the path", path: fill(NUL) });
  if (parameters.some((p) => p.in === "query")) {
    probes.push({ label: "NUL in every query parameter", path: plain, query: query(() => NUL) });
    probes.push({ label: "huge query parameters", path: plain, query: query(() => "q".repeat(5_000)) });
    probes.push({
      label: "wrong-type query parameters",
      path: plain,
      query: query((p) => String(wrongType(p.schema))),
    });
  }
  const json = operation.requestBody?.content["application/json"];
  if (json) {
    const properties = Object.entries(resolve(json.schema).properties ?? {});
    const each = (value: (schema: Schema) => unknown) =>
      JSON.stringify(Object.fromEntries(properties.map(([name, schema]) => [name, value(schema)])));
    for (const body of ["null", "[]", "[1,2]", "7", '"text"', "true"]) {
      probes.push({ label: `JSON ${body}`, path: plain, body });
    }
    probes.push({ label: "JSON nested 3,000 levels", path: plain, body: JSON.stringify(nested(3000)) });
    probes.push({ label: "NUL in every field", path: plain, body: each(() => NUL) });
    probes.push({ label: "NUL in a key", path: plain, body: JSON.stringify({ [NUL]: 1 }) });
    probes.push({ label: "wrong type in every field", path: plain, body: each(wrongType) });
    probes.push({ label: "huge string in every field", path: plain, body: each(() => HUGE) });
    probes.push({ label: "every field nested 100 levels", path: plain, body: each(() => nested(100)) });
  }
  return probes;
}

describe("fuzzing every operation of /openapi.json", () => {
  let admin: TestUser;
  beforeAll(async () => {
    admin = await signedInUser("admin");
    doc = (await (await serve(app, "/openapi.json")).json()) as OpenApi;
  });

  it("answers bad input with a 4xx problem, never a 5xx", async () => {
    const failures: string[] = [];
    let sent = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const probe of probesFor(path, operation)) {
          const url = probe.query ? `${probe.path}?${probe.query}` : probe.path;
          const res = await callRaw(method.toUpperCase(), url, {
            token: admin.access,
            ip: "192.0.2.77",
            body: probe.body,
            headers: probe.body !== undefined ? { "content-type": "application/json" } : {},
          });
          sent++;
          const text = await res.text();
          if (res.status >= 500)
            failures.push(`${method.toUpperCase()} ${path} (${probe.label}): ${res.status} ${text}`);
        }
      }
    }
    expect(sent).toBeGreaterThan(500);
    expect(failures).toEqual([]);
  }, 300_000);
});
