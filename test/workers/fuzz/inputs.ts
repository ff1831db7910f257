import fc from "fast-check";
import { type OpenApiDocument, resolveSchema, type Schema } from "./openapi.ts";

// Values for parameters and bodies: schema-valid ones generated from the document's JSON Schema, and the
// input a careless or hostile client sends. Hostile values are tagged so the oracle knows a request carries
// something the global input guard may refuse before authentication (NUL, non-object JSON, deep nesting).

/** A raw JSON number token no JSON.stringify can write (1e999 parses to Infinity): replaced after stringify. */
const RAW_NUMBERS = ["1e999", "-1e999", "1e-999", "123456789012345678901234567890", "-0"] as const;
const rawToken = (token: string) => `@@raw:${token}@@`;
export const withRawNumbers = (json: string) => json.replace(/"@@raw:([^"@]+)@@"/g, "$1");
/** The text of a value in a URL or form field, raw number tokens written as themselves. */
export const plainText = (value: unknown): string =>
  (typeof value === "string" ? value : (JSON.stringify(value) ?? "")).replace(/@@raw:([^@]+)@@/g, "$1");

const TRAVERSAL = [
  "../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
  "....//....//etc/passwd",
  "/etc/passwd",
  "file:///etc/passwd",
];
const SQL = [
  "' OR '1'='1",
  "'; DROP TABLE users; --",
  "1 UNION SELECT password_hash FROM users",
  "\\'",
  "%' AND 1=1 --",
  "$1",
  "1; select pg_sleep(30)",
];
const ODD = [
  "",
  " ",
  "null",
  "undefined",
  "NaN",
  "-1",
  "0x7fffffff",
  "<script>alert(1)</script>",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: template-injection probe, sent as text
  "${7*7}{{7*7}}",
  "%s%n%x",
  "\u202eevil",
  "𝕏🙂\u0301",
  "__proto__",
  "constructor",
];

/** A string holding NUL or a lone surrogate: the guard refuses NUL; lone surrogates must pass or be a 4xx. */
export const controlString = fc.oneof(
  fc.constantFrom("bad\u0000value", "\u0000", "a\ud800b", "\udfff", "\ud83d", "x\u0000\ud800"),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** Hostile text: traversal, SQL-looking, odd, control characters, or huge. */
export const hostileString = (maxHuge: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...TRAVERSAL, ...SQL, ...ODD) },
    { weight: 2, arbitrary: controlString },
    { weight: 1, arbitrary: fc.constantFrom(1_000, 10_000, maxHuge).map((n) => "x".repeat(n)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  );

export const hostileNumber = fc.oneof(
  fc.constantFrom(-1, 0, -0.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, 5e-324),
  fc.constantFrom(...RAW_NUMBERS).map(rawToken),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** `levels` objects or arrays inside each other (the guard refuses past its depth limit). */
export const nested = (levels: number, array: boolean): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = array ? [value] : { a: value };
  return value;
};

const wrongTypeFor = (type: string | undefined): fc.Arbitrary<unknown> => {
  switch (type) {
    case "string":
      return fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant(["x"]), fc.constant({ x: 1 }));
    case "number":
    case "integer":
      return fc.oneof(fc.constant("12"), fc.constant("not a number"), fc.boolean(), fc.constant(null), hostileNumber);
    case "boolean":
      return fc.constantFrom("true", "yes", 1, 0, null);
    case "array":
      return fc.constantFrom({ not: "an array" }, "a,b", 7, null);
    case "object":
      return fc.constantFrom(["not", "an", "object"], "{}", 7, null);
    default:
      return fc.constantFrom(null, 7, "x", [], {});
  }
};

const typeOf = (schema: Schema): string | undefined => [schema.type].flat().find((t) => t !== "null");

/** Schema-valid values, generated from the document's JSON Schema (formats, patterns, bounds, enums). */
export function validValue(doc: OpenApiDocument, raw: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolveSchema(doc, raw);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const choices = schema.anyOf ?? schema.oneOf;
  if (choices?.length) return fc.oneof(...choices.map((choice) => validValue(doc, choice, depth + 1)));
  if (depth > 6) return fc.constant(schema.default ?? null);
  switch (typeOf(schema)) {
    case "string":
      return validString(schema);
    case "integer": {
      const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : -1000);
      const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : min + 2000);
      return fc.integer({ min: Math.ceil(min), max: Math.max(Math.ceil(min), Math.floor(max)) });
    }
    case "number": {
      const min = schema.minimum ?? schema.exclusiveMinimum ?? -1000;
      const max = schema.maximum ?? schema.exclusiveMaximum ?? min + 2000;
      return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
    }
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    case "array":
      return fc.array(validValue(doc, schema.items, depth + 1), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 3, (schema.minItems ?? 0) + 3),
      });
    case "object":
      return validObject(doc, schema, depth);
    default:
      return fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean());
  }
}

function validString(schema: Schema): fc.Arbitrary<string> {
  if (schema.format === "uuid") return fc.uuid({ version: 4 });
  if (schema.format === "date-time") return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
  if (schema.format === "date") return fc.date({ noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
  if (schema.format === "email") return fc.emailAddress();
  if (schema.pattern) {
    const bounded = fc.stringMatching(new RegExp(schema.pattern));
    return schema.maxLength ? bounded.filter((s) => s.length <= (schema.maxLength as number)) : bounded;
  }
  const minLength = schema.minLength ?? 0;
  return fc.string({ minLength, maxLength: Math.min(schema.maxLength ?? 24, minLength + 24) });
}

function validObject(doc: OpenApiDocument, schema: Schema, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  if (Object.keys(properties).length === 0) {
    return fc.dictionary(
      fc.string({ minLength: 1, maxLength: 8 }),
      fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
      {
        maxKeys: 3,
      },
    );
  }
  const model = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, validValue(doc, v, depth + 1)]));
  return fc.record(model, { requiredKeys: (schema.required ?? []).filter((k) => k in properties) });
}

/** A value that breaks the schema: the wrong type, a hostile string or number, null, deep nesting. */
export function invalidValue(doc: OpenApiDocument, raw: Schema | undefined, maxHuge: number): fc.Arbitrary<unknown> {
  const schema = resolveSchema(doc, raw);
  const type = typeOf(schema);
  const outOfRange =
    type === "integer" || type === "number"
      ? fc.constantFrom(
          (schema.minimum ?? 0) - 1,
          (schema.maximum ?? 2 ** 53) + 1,
          (schema.minimum ?? 0) + 0.5,
          rawToken("1e999"),
        )
      : type === "string"
        ? fc.constantFrom("", "x".repeat((schema.maxLength ?? 10_000) + 1))
        : fc.constant(null);
  return fc.oneof(
    { weight: 3, arbitrary: wrongTypeFor(type) },
    { weight: 3, arbitrary: hostileString(maxHuge) },
    { weight: 2, arbitrary: outOfRange },
    { weight: 1, arbitrary: hostileNumber },
    { weight: 1, arbitrary: fc.constantFrom(nested(40, false), nested(40, true), nested(200, false)) },
  );
}

/** A JSON body: schema-valid, valid with fields broken or missing, or not the object the route takes. */
export function jsonBodyText(doc: OpenApiDocument, schema: Schema | undefined, maxHuge: number) {
  const valid = validValue(doc, schema);
  const resolved = resolveSchema(doc, schema);
  const fields = Object.keys(resolved.properties ?? {});
  const broken = fc
    .tuple(
      valid,
      fields.length ? fc.subarray(fields, { minLength: 1 }) : fc.constant([] as string[]),
      fc.boolean(),
      fc.option(fc.tuple(fc.oneof(hostileString(64), fc.constantFrom("__proto__", "constructor")), fc.anything())),
    )
    .chain(([base, picked, drop, extra]) =>
      fc.tuple(...picked.map((name) => invalidValue(doc, resolved.properties?.[name], maxHuge))).map((values) => {
        const body = { ...(base as Record<string, unknown>) };
        picked.forEach((name, i) => {
          if (drop && i === 0) delete body[name];
          else body[name] = values[i];
        });
        if (extra) Object.defineProperty(body, extra[0], { value: extra[1], enumerable: true });
        return body;
      }),
    );
  const notAnObject = fc.constantFrom(
    "null",
    "[]",
    "[1,2]",
    "7",
    '"text"',
    "true",
    "",
    "{",
    '{"a":',
    "{'single': 'quotes'}",
    "\ufeff{}",
    `${"[".repeat(5_000)}${"]".repeat(5_000)}`,
    JSON.stringify(nested(3_000, false)),
  );
  return fc.oneof(
    { weight: 3, arbitrary: valid.map((v) => ({ text: withRawNumbers(JSON.stringify(v) ?? "null"), unsafe: false })) },
    { weight: 4, arbitrary: broken.map((v) => ({ text: withRawNumbers(JSON.stringify(v)), unsafe: true })) },
    { weight: 1, arbitrary: notAnObject.map((text) => ({ text, unsafe: true })) },
  );
}

/** Percent-encodes like encodeURIComponent, but writes a lone surrogate as its (invalid) UTF-8 bytes instead of throwing. */
export function encodeLoosely(value: string): string {
  let out = "";
  for (const char of value) {
    const unit = char.charCodeAt(0);
    if (char.length === 1 && unit >= 0xd800 && unit <= 0xdfff) {
      out += [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join("");
    } else out += encodeURIComponent(char);
  }
  return out;
}

/** Raw query fragments no encoder writes: broken escapes, encoded NUL, an empty name. */
export const rawQueryJunk = fc.constantFrom("%", "%zz", "%ED%A0%80", "%00", "=x", "&&", "a=%E2%82", "%C0%AF");

/** Content types a route did not ask for, plus a missing one. */
export const badContentType = fc.constantFrom(
  undefined,
  "text/plain",
  "application/xml",
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "multipart/form-data; boundary=nothing",
  "application/json; charset=utf-16",
  "application/x-ndjson",
  "application/octet-stream",
  "image/png",
  "application/jsonx",
  "*/*",
  "",
);
