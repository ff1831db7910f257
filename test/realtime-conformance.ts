// OpenAI Realtime (GA) conformance: validates events against the published JSON schemas, inside workerd.
// @cfworker/json-schema interprets schemas without code generation (Workers forbid eval, so ajv cannot run).
import { dereference, type Schema, validate } from "@cfworker/json-schema";
import document from "./fixtures/openai-realtime/openapi-realtime-event-schemas.json" with { type: "json" };
import eventIndex from "./fixtures/openai-realtime/realtime-event-types-index.json" with { type: "json" };

export type Side = "client" | "server";

interface IndexEntry {
  schema: string;
  type: string;
  required: string[];
  description: string;
  example: string;
}

const index = eventIndex as unknown as Record<`${Side}_events`, Record<string, IndexEntry>>;

// The document is not itself a schema: an absolute $id lets "#/components/schemas/X" refs resolve against it.
const ROOT = "https://openai-realtime.conformance.invalid/schemas.json";

// OpenAPI 3.1 is JSON Schema 2020-12 except `nullable`, which becomes an explicit null branch. `discriminator`
// and `x-*` are annotations the validator ignores; the anyOf/oneOf beside them carry the meaning.
const toJsonSchema = (node: unknown): unknown => {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== "object") return node;
  const { nullable, ...rest } = node as Record<string, unknown>;
  if (typeof nullable !== "boolean")
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, toJsonSchema(v)]));
  const schema = toJsonSchema(rest);
  return nullable ? { anyOf: [schema, { type: "null" }] } : schema;
};

let lookup: Record<string, Schema | boolean> | undefined;
// Built on first use: dereferencing walks the whole document once and indexes every subschema by URI.
const schemaLookup = () =>
  (lookup ??= dereference({ $id: ROOT, components: toJsonSchema(document.components) } as Schema));

export const eventTypes = (side: Side): string[] => Object.keys(index[`${side}_events`]);

export const eventEntry = (side: Side, type: string): IndexEntry | undefined => index[`${side}_events`][type];

// Problems found in one event (empty when valid), each as "<instance pointer>: <message>".
export function validateEvent(side: Side, event: unknown): string[] {
  const type = (event as { type?: unknown } | null)?.type;
  if (typeof type !== "string") return ["#: event has no string `type`"];
  const entry = eventEntry(side, type);
  if (!entry) return [`#/type: unknown ${side} event type "${type}"`];
  // Validate what goes on the wire: JSON drops undefined members, which the validator would reject.
  const instance = JSON.parse(JSON.stringify(event));
  const ref = { $ref: `${ROOT}#/components/schemas/${entry.schema}` };
  const result = validate(instance, ref, "2020-12", schemaLookup(), false);
  if (result.valid) return [];
  const problems = result.errors
    .filter((e) => e.error !== "A subschema had errors.")
    .map((e) => `${e.instanceLocation}: ${e.error}`);
  return problems.length > 0 ? [...new Set(problems)] : ["#: invalid"];
}

export const validateServerEvent = (event: unknown): string[] => validateEvent("server", event);
export const validateClientEvent = (event: unknown): string[] => validateEvent("client", event);

// The documented examples are JSON with comments, trailing commas and sometimes several values in a row.
export function parseDocumentedExample(text: string): unknown[] {
  const values: string[] = [];
  let current = "";
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      current += c;
      if (c === "\\") current += text[++i] ?? "";
      else if (c === '"') inString = false;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++;
    } else if (c === "," && /^(\s|\/\/[^\n]*)*[}\]]/.test(text.slice(i + 1))) {
      // trailing comma: dropped
    } else {
      if (c === '"') inString = true;
      if (c === "{" || c === "[") depth++;
      if (depth > 0) current += c;
      if (c === "}" || c === "]") depth--;
      if (depth === 0 && current) {
        values.push(current);
        current = "";
      }
    }
  }
  return values.map((v) => JSON.parse(v));
}

export const documentedExamples = (side: Side, type: string): unknown[] =>
  parseDocumentedExample(eventEntry(side, type)?.example ?? "");
