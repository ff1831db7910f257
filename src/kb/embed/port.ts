/** Turns texts into vectors. `model` and `dimensions` are recorded with every index built from it. */
export interface Embedder {
  readonly model: string;
  readonly dimensions: number;
  /** One vector per text, in order; batching, timeouts and retries are the adapter's job. */
  embed(texts: string[]): Promise<number[][]>;
}
