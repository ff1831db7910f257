// The bench runners' command lines: node:util parseArgs plus what each runner does with it. -h / --help prints
// the usage and exits 0; a value that does not fit prints what is wrong, then the usage, and exits 2.
import { type ParseArgsConfig, parseArgs } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
/** What parseArgs gives for these options (strict: no positionals). */
type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O }>>["values"];

export function parseOptions<const O extends Options>(usage: string, options: O) {
  const values = parseArgs({ options: { ...options, help: { type: "boolean", short: "h", default: false } } })
    .values as Values<O> & { help: boolean };
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  type Name = keyof O & string;
  const fail = (message: string): never => {
    console.error(`${message}\n${usage}`);
    process.exit(2);
  };
  const text = (name: Name) => (values as Record<string, unknown>)[name] as string | undefined;
  /** An integer option of at least `min` (undefined when not given and without a default). */
  const optionalInt = (name: Name, min = 1): number | undefined => {
    const given = text(name);
    if (given === undefined) return undefined;
    const n = Number(given);
    return Number.isInteger(n) && n >= min ? n : fail(`--${name} must be an integer of at least ${min}`);
  };
  return {
    args: values,
    fail,
    optionalInt,
    /** An integer option of at least `min`. */
    int: (name: Name, min = 1): number => optionalInt(name, min) ?? fail(`--${name} must be given`),
    /** A comma-separated list of integers from `min` to `max`. */
    ints: (name: Name, min = 1, max = Number.MAX_SAFE_INTEGER): number[] => {
      const list = (text(name) ?? "").split(",").map((s) => Number(s.trim()));
      const ok = list.every((n) => Number.isInteger(n) && n >= min && n <= max);
      const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
      return ok ? list : fail(`--${name} must list integers ${range}`);
    },
    /** One of `choices`. */
    oneOf: <const C extends string>(name: Name, choices: readonly C[]): C => {
      const given = text(name) as C;
      return choices.includes(given) ? given : fail(`--${name} must be ${choices.join(" or ")}`);
    },
  };
}
