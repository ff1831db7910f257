// What an error may say in a log line or an error report: its kind and codes, never the data it carried.

import { redactText } from "./redact.ts";

/** A log-safe description of an error and its causes: names, Postgres SQLSTATE and object names, stack frames. */
export function describeError(error: unknown): Record<string, unknown> | string {
  if (!(error instanceof Error)) return redactText(String(error));
  const chain: Record<string, unknown>[] = [];
  for (let e: unknown = error; e instanceof Error && chain.length < 4; e = e.cause) chain.push(describeOne(e));
  const [first, ...causes] = chain;
  return { ...first, stack: stackFrames(error), ...(causes.length ? { causes } : {}) };
}

function describeOne(error: Error): Record<string, unknown> {
  const sqlstate = postgresFields(error);
  // A database error's text quotes the statement, its parameters or the offending value: only its codes leave.
  if (sqlstate) return { name: error.name, ...sqlstate };
  if (isFailedQuery(error)) return { name: error.name, message: "Failed query (statement and parameters withheld)" };
  return { name: error.name, message: redactText(error.message) };
}

const isFailedQuery = (error: Error) => error.message.startsWith("Failed query:");

// Postgres errors carry a five-character SQLSTATE and a severity; their names of objects are schema, not data.
function postgresFields(error: Error): Record<string, string> | undefined {
  const fields = error as Error & Record<string, unknown>;
  if (typeof fields.code !== "string" || !/^[0-9A-Z]{5}$/.test(fields.code) || !("severity" in fields)) return;
  const out: Record<string, string> = { sqlstate: fields.code };
  for (const key of ["table", "column", "constraint", "routine"]) {
    if (typeof fields[key] === "string") out[key] = fields[key];
  }
  return out;
}

// The first stack line repeats the message; frames are code locations only.
const stackFrames = (error: Error) =>
  error.stack
    ?.split("\n")
    .filter((line) => /^\s+at /.test(line))
    .slice(0, 8)
    .join("\n");

/** One line for a person (a document's failure reason): the error's message, or for a database error its SQLSTATE. */
export function safeErrorMessage(error: unknown): string {
  const described = describeError(error);
  if (typeof described === "string") return described;
  const { name: _name, stack: _stack, causes, ...first } = described;
  const database = [first, ...((causes as Record<string, unknown>[] | undefined) ?? [])].find((e) => e.sqlstate);
  return database ? `database error (SQLSTATE ${String(database.sqlstate)})` : String(first.message);
}

/** The same error for Sentry: its name, safe description and stack frames, without the data it carried. */
export function reportableError(error: unknown): Error {
  const described = describeError(error);
  const safe = new Error(typeof described === "string" ? described : summarise(described));
  if (error instanceof Error) {
    safe.name = error.name;
    safe.stack = `${safe.name}: ${safe.message}\n${stackFrames(error) ?? ""}`;
  }
  return safe;
}

const summarise = ({ stack: _stack, causes, ...first }: Record<string, unknown>): string =>
  [first, ...((causes as Record<string, unknown>[] | undefined) ?? [])]
    .map(({ name, ...rest }) => `${name}: ${Object.values(rest).join(" ")}`)
    .join(" <- ");
