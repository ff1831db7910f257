// The parts of the app's own /openapi.json the fuzzer reads: operations, their parameters, bodies and security.

export interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  default?: unknown;
}

export interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: Schema;
}

export interface Operation {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, unknown>;
  security?: Record<string, string[]>[];
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas?: Record<string, Schema> };
}

/** One method on one path, as the document names it ("POST /api/conversations/{id}/messages"). */
export interface DocumentedOperation {
  id: string;
  method: string;
  path: string;
  operation: Operation;
  /** Security schemes named in `security` (bearerAuth, apiKey, operatorToken, bootstrapToken). */
  schemes: string[];
  declares: (status: number) => boolean;
}

export function operationsOf(doc: OpenApiDocument): DocumentedOperation[] {
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      id: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      operation,
      schemes: (operation.security ?? []).flatMap((requirement) => Object.keys(requirement)),
      declares: (status: number) => String(status) in operation.responses,
    })),
  );
}

/** The schema behind a $ref, with allOf merged into one object schema. */
export function resolveSchema(doc: OpenApiDocument, schema: Schema | undefined, depth = 0): Schema {
  if (!schema || depth > 20) return {};
  if (schema.$ref) return resolveSchema(doc, doc.components.schemas?.[schema.$ref.split("/").at(-1) ?? ""], depth + 1);
  if (schema.allOf) {
    const parts = schema.allOf.map((part) => resolveSchema(doc, part, depth + 1));
    return {
      ...schema,
      allOf: undefined,
      type: "object",
      properties: Object.assign({}, schema.properties, ...parts.map((p) => p.properties)),
      required: [...(schema.required ?? []), ...parts.flatMap((p) => p.required ?? [])],
    };
  }
  return schema;
}
