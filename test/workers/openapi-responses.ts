import { dereference, type OutputUnit, type Schema, validate } from "@cfworker/json-schema";

// Every response a suite receives through `call` is held to its operation's entry in /openapi.json: the status must be
// declared (or `default`), and a JSON body must match the declared schema and carry no field the schema leaves out.
// The document is fetched and dereferenced once per test file (each file has its own module instance).

interface MediaType {
  schema?: Schema;
}
interface ResponseObject {
  content?: Record<string, MediaType>;
}
interface Operation {
  responses?: Record<string, ResponseObject>;
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  literals: number;
  operation: Operation;
}

/** What the suite received, as `call` saw it. */
export interface ReceivedResponse {
  method: string;
  path: string;
  status: number;
  contentType: string | null;
  body: unknown;
}

const METHODS = new Set(["get", "put", "post", "delete", "patch"]);
const DOCUMENT_PATH = "/openapi.json";
const BASE = `https://voiceassist.test${DOCUMENT_PATH}`;

const isJson = (mediaType: string) => mediaType === "application/json" || mediaType.endsWith("+json");

function routesOf(doc: OpenApiDocument): Route[] {
  const routes: Route[] = [];
  for (const [template, operations] of Object.entries(doc.paths)) {
    const segments = template.split("/");
    const source = segments.map((s) => (/^\{[^}]+\}$/.test(s) ? "[^/]+" : s.replace(/[.*+?^$()|[\]\\]/g, "\\$&")));
    const literals = segments.filter((s) => s && !s.startsWith("{")).length;
    for (const [method, operation] of Object.entries(operations)) {
      if (!METHODS.has(method)) continue;
      routes.push({ method, template, pattern: new RegExp(`^${source.join("/")}$`), literals, operation });
    }
  }
  // The most literal template wins (/api/kb/documents/import over /api/kb/documents/{id}), as in the app's routers.
  return routes.sort((a, b) => b.literals - a.literals);
}

/** The deepest errors first: the leaves say what is wrong; `properties`/`allOf` wrappers only repeat them. */
function leafErrors(errors: OutputUnit[]): OutputUnit[] {
  const wrappers = new Set(["properties", "items", "prefixItems", "allOf", "$ref", "additionalProperties"]);
  const leaves = errors.filter((e) => !wrappers.has(e.keyword));
  return leaves.length ? leaves : errors;
}

const pointer = (instanceLocation: string) => instanceLocation.replace(/^#/, "") || "/";

export function responseContract(loadDocument: () => Promise<OpenApiDocument>) {
  let loaded: Promise<{ routes: Route[]; lookup: Record<string, Schema | boolean> }> | undefined;
  const load = () => {
    loaded ??= loadDocument().then((doc) => {
      // One walk indexes every schema in the document by its pointer, so "#/components/schemas/X" resolves.
      const lookup = dereference({ ...doc, $id: BASE } as Schema);
      return { routes: routesOf(doc), lookup };
    });
    return loaded;
  };

  const resolve = (schema: Schema, lookup: Record<string, Schema | boolean>): Schema => {
    let current = schema;
    for (let hops = 0; current.$ref && hops < 32; hops++) {
      const target = lookup[current.__absolute_ref__ ?? current.$ref];
      if (!target || typeof target === "boolean") break;
      current = target;
    }
    return current;
  };

  /** JSON pointers of object keys in `value` that no applicable schema declares (open objects declare every key). */
  const undeclared = (
    value: unknown,
    schemas: Schema[],
    at: string,
    lookup: Record<string, Schema | boolean>,
    out: string[],
  ) => {
    if (value === null || typeof value !== "object") return;
    // Every schema that applies to this value: the given ones, their allOf parts, and the anyOf/oneOf parts it matches.
    const applicable: Schema[] = [];
    const collect = (raw: Schema | boolean | undefined) => {
      if (!raw || typeof raw === "boolean") return;
      const schema = resolve(raw, lookup);
      applicable.push(schema);
      for (const part of schema.allOf ?? []) collect(part);
      for (const part of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
        if (validate(value, part, "2020-12", lookup, true).valid) collect(part);
      }
    };
    for (const schema of schemas) collect(schema);
    if (Array.isArray(value)) {
      const items = applicable.flatMap((s) => (s.items && typeof s.items === "object" ? [s.items as Schema] : []));
      if (items.length) for (const [i, item] of value.entries()) undeclared(item, items, `${at}/${i}`, lookup, out);
      return;
    }
    const freeForm = (s: Schema) =>
      !s.properties &&
      s.additionalProperties === undefined &&
      !s.allOf &&
      !s.anyOf &&
      !s.oneOf &&
      (s.type === undefined || [s.type].flat().includes("object"));
    const open = applicable.some(
      (s) =>
        (s.additionalProperties !== undefined && s.additionalProperties !== false) ||
        s.patternProperties ||
        freeForm(s),
    );
    for (const [key, child] of Object.entries(value)) {
      const declared = applicable.flatMap((s) => {
        const property = s.properties?.[key];
        return property && typeof property === "object" ? [property as Schema] : [];
      });
      const extra = applicable.flatMap((s) =>
        !s.properties?.[key] && s.additionalProperties && typeof s.additionalProperties === "object"
          ? [s.additionalProperties as Schema]
          : [],
      );
      const escaped = `${at}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      if (declared.length || extra.length) undeclared(child, [...declared, ...extra], escaped, lookup, out);
      else if (!open) out.push(escaped);
    }
  };

  /**
   * Throws when the response disagrees with the document: an operation the document lacks, a status it does not
   * declare, a JSON media type it does not list, a body its schema rejects, or fields its schema does not declare.
   */
  return async function check(received: ReceivedResponse, options: { undocumented?: boolean } = {}): Promise<void> {
    const method = received.method.toLowerCase();
    if (!METHODS.has(method)) return; // HEAD and CORS preflights are answered by middleware, not by an operation
    const { routes, lookup } = await load();
    const path = received.path.split(/[?#]/)[0] ?? "";
    const route = routes.find((r) => r.method === method && r.pattern.test(path));
    const where = `${received.method.toUpperCase()} ${path}`;
    if (!route) {
      if (options.undocumented || (method === "get" && path === DOCUMENT_PATH)) return; // the document omits itself
      const other = routes.find((r) => r.pattern.test(path));
      if (received.status === 405 && other) return; // the app answers any undeclared method of a known path with 405
      throw new Error(
        `${where} answered ${received.status}, but /openapi.json has no such operation ` +
          "(pass `undocumented: true` to call() when the path is deliberately unknown)",
      );
    }
    const name = `${received.method.toUpperCase()} ${route.template}`;
    if (options.undocumented) throw new Error(`${where} is ${name} in /openapi.json: drop \`undocumented\``);
    const responses = route.operation.responses ?? {};
    const declared = responses[String(received.status)] ?? responses.default;
    if (!declared) {
      throw new Error(
        `${name} answered ${received.status} (${where}), which /openapi.json does not declare for it ` +
          `(it declares ${Object.keys(responses).join(", ") || "nothing"})`,
      );
    }
    const mediaType = received.contentType?.split(";")[0]?.trim().toLowerCase() ?? "";
    if (!isJson(mediaType) || received.body === undefined) return;
    const content = declared.content?.[mediaType];
    if (!content) {
      const listed = Object.keys(declared.content ?? {}).join(", ") || "no body";
      throw new Error(`${name} answered ${received.status} ${mediaType}, but /openapi.json lists ${listed} for it`);
    }
    if (!content.schema) return;
    const result = validate(received.body, content.schema, "2020-12", lookup, false);
    if (!result.valid) {
      const errors = leafErrors(result.errors)
        .slice(0, 5)
        .map((e) => `  ${pointer(e.instanceLocation)}: ${e.error} (${e.keywordLocation.replace(/^#/, "")})`);
      throw new Error(
        `${name} answered ${received.status} ${mediaType} that does not match its schema in /openapi.json:\n${errors.join("\n")}`,
      );
    }
    const extra: string[] = [];
    undeclared(received.body, [content.schema], "", lookup, extra);
    if (extra.length) {
      throw new Error(
        `${name} answered ${received.status} ${mediaType} with fields its schema in /openapi.json does not declare: ` +
          extra.slice(0, 8).join(", "),
      );
    }
  };
}
