import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import { closeServer, listenOnFreePort, RequestError, readJsonBody, sendJson } from "../../scripts/local-stack/http.ts";
import { fakeEmbedding } from "./fake-embedding.ts";

/**
 * A local OpenAI-compatible server for tests of the real `openai` SDK (no model can be reached from
 * here). Responses follow the shapes of api.openai.com/v1; vectors are deterministic (fake-embedding.ts).
 *
 * Scripted faults: an input that starts with "!fault" makes the request fail, e.g.
 *   "!fault status=429 retry-after=1 times=1 key=<unique>"  429 with Retry-After for the first request of <key>
 *   "!fault status=500 key=<unique>"                        500 every time
 *   "!fault status=hang key=<unique>"                       never answers (until the client gives up)
 * An API key starting with "sk-invalid" gets a 401. GET /__requests?contains=<text> lists the requests
 * whose body contains <text>, headers included, so tests can check batching and trace headers.
 * Add routes to `routes` (chat, audio...) as their adapters arrive.
 */

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

interface RouteContext {
  body: unknown;
  headers: IncomingHttpHeaders;
  response: ServerResponse;
}

type Route = (context: RouteContext) => void;

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_INPUTS = 2048;
const MODEL_DIMENSIONS: Record<string, number> = {
  "text-embedding-3-small": 1536,
  "text-embedding-3-large": 3072,
  "text-embedding-ada-002": 1536,
};

const routes: Record<string, Route> = {
  "POST /v1/embeddings": embeddings,
};

export async function startOpenAiStandIn(): Promise<{ url: string; stop(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const faultCounts = new Map<string, number>();

  const server = createServer(async (request, response) => {
    const path = (request.url ?? "/").split("?")[0] ?? "/";
    try {
      if (request.method === "GET" && path === "/__requests") {
        const contains = new URL(request.url ?? "/", "http://standin").searchParams.get("contains") ?? "";
        sendJson(
          response,
          200,
          requests.filter((r) => JSON.stringify(r.body).includes(contains)),
        );
        return;
      }
      const route = routes[`${request.method} ${path}`];
      if (!route) {
        openAiError(
          response,
          404,
          `Unknown request URL: ${request.method} ${path}.`,
          "invalid_request_error",
          "unknown_url",
        );
        return;
      }
      const body = await readJsonBody(request, MAX_BODY_BYTES);
      requests.push({ method: request.method ?? "", path, headers: request.headers, body });
      const key = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
      if (!key || key.startsWith("sk-invalid")) {
        openAiError(response, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
        return;
      }
      if (scriptedFault(body, faultCounts, response)) return;
      route({ body, headers: request.headers, response });
    } catch (error) {
      const status = error instanceof RequestError ? error.status : 500;
      openAiError(response, status, (error as Error).message, status < 500 ? "invalid_request_error" : "server_error");
    }
  });
  const port = await listenOnFreePort(server);
  return { url: `http://127.0.0.1:${port}`, stop: () => closeServer(server) };
}

/** OpenAI's error envelope. */
function openAiError(response: ServerResponse, status: number, message: string, type: string, code?: string): void {
  sendJson(response, status, { error: { message, type, param: null, code: code ?? null } });
}

/** Answers with the fault named by a leading "!fault ..." input, if any; true when it did. */
function scriptedFault(body: unknown, counts: Map<string, number>, response: ServerResponse): boolean {
  const input = (body as { input?: unknown }).input;
  const first = Array.isArray(input) ? input[0] : input;
  if (typeof first !== "string" || !first.startsWith("!fault ")) return false;
  const spec = Object.fromEntries(
    first
      .slice(7)
      .split(/\s+/)
      .map((pair) => pair.split("=") as [string, string]),
  );
  const key = spec.key ?? first;
  const seen = counts.get(key) ?? 0;
  if (seen >= Number(spec.times ?? Number.POSITIVE_INFINITY)) return false;
  counts.set(key, seen + 1);
  if (spec.status === "hang") return true; // closed when the client aborts or the server stops
  const status = Number(spec.status);
  if (status === 429) {
    response.setHeader("retry-after", spec["retry-after"] ?? "1");
    openAiError(response, 429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded");
  } else {
    openAiError(
      response,
      status,
      `Scripted failure (${status}).`,
      status < 500 ? "invalid_request_error" : "server_error",
    );
  }
  return true;
}

function embeddings({ body, response }: RouteContext): void {
  const { model, input, dimensions, encoding_format: format = "float" } = body as Record<string, unknown>;
  if (typeof model !== "string" || !(model in MODEL_DIMENSIONS)) {
    openAiError(
      response,
      404,
      `The model \`${String(model)}\` does not exist.`,
      "invalid_request_error",
      "model_not_found",
    );
    return;
  }
  const inputs = typeof input === "string" ? [input] : input;
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_INPUTS) {
    openAiError(response, 400, `'$.input' must be a string or 1..${MAX_INPUTS} strings.`, "invalid_request_error");
    return;
  }
  if (inputs.some((text) => typeof text !== "string" || text.length === 0)) {
    openAiError(response, 400, "'$.input' is invalid: empty strings are not allowed.", "invalid_request_error");
    return;
  }
  if (dimensions !== undefined && (!Number.isInteger(dimensions) || (dimensions as number) < 1)) {
    openAiError(response, 400, "'dimensions' must be a positive integer.", "invalid_request_error");
    return;
  }
  if (format !== "float" && format !== "base64") {
    openAiError(response, 400, "'encoding_format' must be 'float' or 'base64'.", "invalid_request_error");
    return;
  }
  const size = (dimensions as number | undefined) ?? (MODEL_DIMENSIONS[model] as number);
  const tokens = (inputs as string[]).reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
  sendJson(response, 200, {
    object: "list",
    data: (inputs as string[]).map((text, index) => {
      const vector = fakeEmbedding(text, size);
      return {
        object: "embedding",
        index,
        // base64 is the little-endian float32 array, as the SDK expects by default.
        embedding: format === "base64" ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector,
      };
    }),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}
