import { describe, expect, it } from "vitest";
import { call } from "./harness.ts";
import { type OpenApiDocument, responseContract } from "./openapi-responses.ts";

// The check `call` runs on every response, against a small document whose every branch is known.
const doc = {
  paths: {
    "/api/things/{id}": {
      get: {
        responses: {
          200: {
            content: {
              "application/json": {
                schema: {
                  allOf: [
                    { $ref: "#/components/schemas/Thing" },
                    { type: "object", properties: { tags: { type: "array", items: { type: "string" } } } },
                  ],
                },
              },
            },
          },
          404: { content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } } },
        },
      },
    },
    "/api/things/export": {
      get: { responses: { 200: { content: { "text/csv": {} } }, default: { content: { "application/json": {} } } } },
    },
  },
  components: {
    schemas: {
      Thing: {
        type: "object",
        properties: {
          id: { type: "string", format: "uuid" },
          note: { anyOf: [{ type: "string" }, { type: "null" }] },
          meta: { type: "object", additionalProperties: { type: "number" } },
        },
        required: ["id", "note"],
      },
      Problem: {
        type: "object",
        properties: { code: { type: "string" } },
        required: ["code"],
        additionalProperties: {},
      },
    },
  },
} as unknown as OpenApiDocument;

const check = responseContract(async () => structuredClone(doc));
const thing = { id: "0f8fad5b-d9cb-469f-a165-70867728950e", note: null, tags: ["a"], meta: { score: 1 } };
const got = (status: number, body: unknown, path = `/api/things/${thing.id}`, contentType = "application/json") =>
  check({ method: "GET", path, status, contentType, body });

describe("the response check against /openapi.json", () => {
  it("passes a body its schema accepts, through $ref, allOf, anyOf and additionalProperties", async () => {
    await expect(got(200, thing)).resolves.toBeUndefined();
    await expect(got(200, thing, `/api/things/${thing.id}?page=2`)).resolves.toBeUndefined();
    await expect(got(404, { code: "NOT_FOUND", extra: 1 }, "/api/things/x", "application/problem+json")).resolves.toBe(
      undefined,
    );
  });

  it("names the operation, the status and the JSON pointer of what does not match", async () => {
    await expect(got(200, { ...thing, id: "not-a-uuid", tags: [1] })).rejects.toThrow(
      /GET \/api\/things\/\{id\} answered 200 application\/json that does not match[\s\S]*\/id: [\s\S]*\/tags\/0: /,
    );
    await expect(got(200, { id: thing.id })).rejects.toThrow(/"note"/);
  });

  it("fails on a field the schema does not declare, however deep", async () => {
    await expect(got(200, { ...thing, secret: "x" })).rejects.toThrow(/does not declare: \/secret$/);
    await expect(got(200, { ...thing, note: "ok", meta: { score: 1, other: 2 } })).resolves.toBeUndefined();
  });

  it("fails on a status the operation does not declare, and on a JSON media type it does not list", async () => {
    await expect(got(409, { code: "CONFLICT" })).rejects.toThrow(/answered 409 .*does not declare .*200, 404/);
    await expect(got(404, { code: "NOT_FOUND" })).rejects.toThrow(/lists application\/problem\+json/);
  });

  it("takes the most literal template, falls back to `default`, and checks only JSON bodies", async () => {
    await expect(got(200, "a,b\n", "/api/things/export", "text/csv")).resolves.toBeUndefined();
    await expect(got(503, { anything: true }, "/api/things/export")).resolves.toBeUndefined();
  });

  it("fails on an operation the document lacks unless the call says the path is deliberately unknown", async () => {
    await expect(got(404, { code: "NOT_FOUND" }, "/api/nothing")).rejects.toThrow(/has no such operation/);
    await expect(
      check(
        { method: "GET", path: "/api/nothing", status: 404, contentType: null, body: undefined },
        { undocumented: true },
      ),
    ).resolves.toBeUndefined();
    await expect(
      check(
        { method: "GET", path: `/api/things/${thing.id}`, status: 200, contentType: null, body: undefined },
        {
          undocumented: true,
        },
      ),
    ).rejects.toThrow(/drop `undocumented`/);
    const deleted = { method: "DELETE", path: `/api/things/${thing.id}`, contentType: null, body: undefined };
    await expect(check({ ...deleted, status: 405 })).resolves.toBeUndefined();
  });

  it("runs on every call against the app's own document", async () => {
    const res = await call("GET", "/api/nothing-here", { undocumented: true });
    expect(res.status).toBe(404);
    await expect(call("GET", "/api/nothing-here")).rejects.toThrow(
      "GET /api/nothing-here answered 404, but /openapi.json has no such operation",
    );
    expect((await call("GET", "/health")).status).toBe(200);
  });
});
