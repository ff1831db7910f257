import fc from "fast-check";
import {
  badContentType,
  controlString,
  encodeLoosely,
  hostileString,
  invalidValue,
  jsonBodyText,
  plainText,
  rawQueryJunk,
  validValue,
} from "./inputs.ts";
import type { DocumentedOperation, OpenApiDocument, Parameter } from "./openapi.ts";

// One generated request for one operation, before a caller's credentials are added. It is plain data, so
// fast-check prints it in a counterexample (with huge strings shortened) and replays it from seed and path.

export type FormField = { name: string; value: string } | { name: string; file: string; type: string; content: string };

export interface RequestShape {
  method: string;
  /** The path with its query string, percent-encoded as sent. */
  url: string;
  headers: Record<string, string>;
  body?: { text: string } | { form: FormField[] };
  /** Hostile input the global guards may refuse before authentication (NUL, non-object JSON, nesting, media type). */
  unsafe: boolean;
  /** A path parameter left the schema, so the router may match another route or none. */
  pathMutated: boolean;
}

/** Ids the fuzzer owns, used for path parameters beside random ids: destructive routes hit these or nothing. */
export interface Fixtures {
  victimUserId: string;
  conversationId: string;
  flagKey: string;
}

/** Query values pinned for every request: effects that would reach other test files through the shared database. */
const PINNED_QUERY: Record<string, Record<string, string>> = {
  // mode=replace would delete every flag in the shared database.
  "POST /api/admin/flags/import": { mode: "merge" },
};

const HUGE_IN_URL = 8_000;
const HUGE_IN_BODY = 300_000;
/** Over the 1 MiB body limit: 413 from the body guard. */
const OVERSIZED = `{"big":"${"x".repeat(1_100_000)}"}`;

const hasNul = (value: string) => value.includes("\u0000");

function pathValue(doc: OpenApiDocument, p: Parameter, fixtures: Fixtures): fc.Arbitrary<[string, boolean]> {
  const own =
    p.name === "id"
      ? [fixtures.victimUserId, fixtures.conversationId]
      : p.name === "userId"
        ? [fixtures.victimUserId]
        : p.name === "key"
          ? [fixtures.flagKey]
          : [];
  const valid = own.length ? fc.oneof(fc.constantFrom(...own), validValue(doc, p.schema)) : validValue(doc, p.schema);
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((v): [string, boolean] => [plainText(v), false]) },
    { weight: 2, arbitrary: hostileString(HUGE_IN_URL).map((v): [string, boolean] => [v, true]) },
  );
}

const queryValue = (doc: OpenApiDocument, p: Parameter) =>
  fc.oneof(
    { weight: 3, arbitrary: validValue(doc, p.schema).map(plainText) },
    { weight: 2, arbitrary: invalidValue(doc, p.schema, HUGE_IN_URL).map(plainText) },
  );

const headerSafe = fc.oneof(
  fc.constantFrom('"1"', '"999999"', "*", 'W/"1"', "", "' OR 1=1 --", "../../etc/passwd", "x".repeat(4_000)),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
);

function formBody(doc: OpenApiDocument, op: DocumentedOperation, media: string): fc.Arbitrary<FormField[]> {
  const properties = Object.entries(op.operation.requestBody?.content[media]?.schema.properties ?? {});
  const field = ([name, schema]: [string, unknown]): fc.Arbitrary<FormField> =>
    schema && (schema as { format?: string }).format === "binary"
      ? fc.record({
          name: fc.constant(name),
          file: fc.constantFrom("notes.txt", "../../etc/passwd", "a\u0000b.pdf", "x".repeat(500), "rapport é.docx", ""),
          type: fc.constantFrom("text/plain", "application/pdf", "audio/wav", "application/octet-stream", "text/html"),
          content: fc.oneof(
            fc.string({ maxLength: 200 }),
            fc.constantFrom("%PDF-1.7\n%garbage", "RIFF\u0000\u0000\u0000\u0000WAVEfmt ", "PK\u0003\u0004"),
          ),
        })
      : fc.record({
          name: fc.constant(name),
          value: fc.oneof(validValue(doc, schema as never).map(plainText), hostileString(10_000), controlString),
        });
  return fc
    .tuple(...properties.map((entry) => fc.option(field(entry), { nil: undefined })))
    .map((fields) => fields.filter((f) => f !== undefined) as FormField[]);
}

const ndjsonBody = fc
  .array(
    fc.oneof(
      fc.record({ title: fc.string(), text: fc.string({ maxLength: 200 }) }, { requiredKeys: [] }).map(plainText),
      fc.anything().map(plainText),
      hostileString(10_000),
    ),
    { maxLength: 4 },
  )
  .map((lines) => lines.join("\n"));

type Body = { body?: RequestShape["body"]; contentType?: string; unsafe: boolean };

function bodyFor(doc: OpenApiDocument, op: DocumentedOperation): fc.Arbitrary<Body> {
  const content = op.operation.requestBody?.content ?? {};
  const none = fc.constant<Body>({ unsafe: false });
  if (op.method === "GET" || op.method === "HEAD") return none;
  const json = content["application/json"];
  const choices: fc.WeightedArbitrary<Body>[] = [{ weight: 1, arbitrary: none }];
  if (json) {
    const text = jsonBodyText(doc, json.schema, HUGE_IN_BODY);
    choices.push({
      weight: 10,
      arbitrary: text.map((b) => ({ body: { text: b.text }, contentType: "application/json", unsafe: b.unsafe })),
    });
    choices.push({
      weight: 1,
      arbitrary: fc
        .tuple(text, badContentType)
        .map(([b, type]) => ({ body: { text: b.text }, contentType: type, unsafe: true })),
    });
  }
  if (content["multipart/form-data"]) {
    choices.push({
      weight: 8,
      arbitrary: formBody(doc, op, "multipart/form-data").map((form) => ({ body: { form }, unsafe: false })),
    });
  }
  if (content["application/x-ndjson"]) {
    choices.push({
      weight: 8,
      arbitrary: ndjsonBody.map((text) => ({ body: { text }, contentType: "application/x-ndjson", unsafe: false })),
    });
  }
  // Anything the route did not ask for: a JSON body where none is taken, a huge one, text under a JSON type.
  choices.push({
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.oneof(
          fc.constant('{"unexpected":true}'),
          fc.constant(OVERSIZED),
          fc.constant("<xml/>"),
          fc.constant("a=1&b=2"),
        ),
        fc.oneof(fc.constant("application/json"), badContentType),
      )
      .map(([text, type]) => ({ body: { text }, contentType: type, unsafe: true })),
  });
  return fc.oneof(...choices);
}

/** A request for this operation: parameters and body each schema-valid or broken, plus odd headers. */
export function requestShape(doc: OpenApiDocument, op: DocumentedOperation, fixtures: Fixtures) {
  const parameters = op.operation.parameters ?? [];
  const pathParams = parameters.filter((p) => p.in === "path");
  const queryParams = parameters.filter((p) => p.in === "query");
  const headerParams = parameters.filter((p) => p.in === "header");
  const pinned = PINNED_QUERY[op.id] ?? {};
  const socket = /\/(ws|realtime)$/.test(op.path) && op.method === "GET";

  return fc
    .record({
      path: fc.tuple(...pathParams.map((p) => pathValue(doc, p, fixtures))),
      query: fc.tuple(...queryParams.map((p) => fc.option(queryValue(doc, p), { nil: undefined }))),
      junk: fc.option(rawQueryJunk, { freq: 8, nil: undefined }),
      headers: fc.tuple(...headerParams.map(() => fc.option(headerSafe, { nil: undefined }))),
      accept: fc.option(fc.constantFrom("text/event-stream", "text/csv", "application/json", "*/*", "x/y;q=?"), {
        nil: undefined,
      }),
      upgrade: socket ? fc.boolean() : fc.constant(false),
      body: bodyFor(doc, op),
    })
    .map(({ path, query, junk, headers, accept, upgrade, body }): RequestShape => {
      let i = 0;
      const filled = op.path.replace(/\{\w+\}/g, () => encodeLoosely(path[i++]?.[0] ?? ""));
      const pairs = queryParams.flatMap((p, j) => {
        const value = pinned[p.name] ?? query[j];
        return value === undefined ? [] : [`${encodeURIComponent(p.name)}=${encodeLoosely(value)}`];
      });
      if (junk) pairs.push(junk);
      const sent: Record<string, string> = {};
      headerParams.forEach((p, j) => {
        if (headers[j] !== undefined) sent[p.name] = headers[j] as string;
      });
      if (accept) sent.accept = accept;
      if (upgrade) sent.upgrade = "websocket";
      if (body.contentType !== undefined) sent["content-type"] = body.contentType;
      const unsafe =
        body.unsafe ||
        junk !== undefined ||
        path.some(([value, mutated]) => mutated && hasNul(value)) ||
        query.some((value) => value !== undefined && hasNul(value)) ||
        (body.body !== undefined && "text" in body.body && hasNul(body.body.text));
      return {
        method: op.method,
        url: pairs.length ? `${filled}?${pairs.join("&")}` : filled,
        headers: sent,
        ...(body.body ? { body: body.body } : {}),
        unsafe,
        pathMutated: path.some(([, mutated]) => mutated),
      };
    });
}

/** The request as a report line: method, URL, headers and body, long strings cut to their first characters. */
export function describeRequest(request: RequestShape, caller: string): string {
  const cut = (text: string) => (text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text);
  const body =
    request.body === undefined
      ? "no body"
      : "text" in request.body
        ? `body ${JSON.stringify(cut(request.body.text))}`
        : `form ${JSON.stringify(request.body.form.map((f) => ("file" in f ? { ...f, content: cut(f.content) } : { ...f, value: cut(f.value) })))}`;
  return `${request.method} ${cut(request.url)} as ${caller}; headers ${JSON.stringify(request.headers)}; ${body}`;
}
