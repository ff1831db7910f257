// Pure, so both the OpenAI stand-in (Node) and the suites inside workerd can compute it.

/** A deterministic unit vector for a text: what the OpenAI stand-in answers, and what tests expect back. */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  let state = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) state = Math.imul(state ^ text.charCodeAt(i), 0x01000193);
  state ||= 1;
  const vector: number[] = [];
  for (let i = 0; i < dimensions; i++) {
    // xorshift32: cheap, and the same in every runtime.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    vector.push((state >>> 0) / 0x1_0000_0000 - 0.5);
  }
  const length = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
  return vector.map((x) => x / length);
}
