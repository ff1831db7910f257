// What every admin command is made of: its input and output, and how it is described in the help.
import { parseArgs } from "node:util";

export interface CliIo {
  env: NodeJS.ProcessEnv;
  readStdin(): Promise<string>;
  /** A password: standard input when piped; a prompt that does not echo on a terminal. */
  readPassword?(prompt: string): Promise<string>;
  out(line: string): void;
  /** Text without a line break (a streamed answer). */
  write(text: string): void;
  err(line: string): void;
}

export interface Command {
  summary: string;
  usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}

/** A command with subcommands (`flags list`, `flags get`, ...). */
export interface Group {
  summary: string;
  note?: string;
  commands: Record<string, Command>;
}

export type Json = Record<string, unknown>;

/** Bad usage: exit 2 with the message and the command's usage. */
export class UsageError extends Error {}

/** The command could not do its work (no server, an ended session): exit 1 with the message alone. */
export class CommandFailed extends Error {}

type OptionSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

/** The command's options plus --url, and (when allowed) its positional arguments (after `--` when one is "-..."). */
export function options<T extends OptionSpec>(args: string[], spec: T, allowPositionals = false) {
  const { values, positionals } = parseArgs({ args, options: { ...spec, url: { type: "string" } }, allowPositionals });
  return { values: values as Values<T> & { url?: string }, positionals };
}

type Values<T extends OptionSpec> = {
  [K in keyof T]?: T[K]["type"] extends "string"
    ? T[K]["multiple"] extends true
      ? string[]
      : string
    : T[K]["multiple"] extends true
      ? boolean[]
      : boolean;
};

/** Exactly one positional argument, named in the error when it is missing. */
export function one(positionals: string[], what: string): string {
  if (positionals.length > 1) throw new UsageError(`give one ${what} (quote it when it holds spaces)`);
  if (!positionals[0]) throw new UsageError(`give the ${what}`);
  return positionals[0];
}

/** An option's value, refused unless it is one of `allowed`; its default when the option is absent. */
export function choice<T extends string>(
  option: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback?: T,
): T | undefined {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${option} must be one of ${allowed.join(", ")}, not "${value}"`);
  }
  return value as T;
}

/** A password: asked for on a terminal, else standard input (its final line break dropped). */
export async function readPassword(io: CliIo, prompt: string): Promise<string> {
  const text = io.readPassword ? await io.readPassword(prompt) : await io.readStdin();
  return text.replace(/\r?\n$/, "");
}

/** Parses a JSON option, naming it when it is not JSON. */
export function jsonOption(value: string, name: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new UsageError(`${name} is not JSON: ${(error as Error).message}`);
  }
}
