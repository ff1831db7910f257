/** What the ledger and the alert book need of a Durable Object's SqlStorage (node:sqlite fits it too, in bench/slo). */
export interface Sql {
  exec(
    query: string,
    ...bindings: (string | number | null)[]
  ): {
    toArray(): Record<string, unknown>[];
    one(): Record<string, unknown>;
  };
}
