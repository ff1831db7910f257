// Stops the local stack that vitest.config.ts started in this process (see test/stack.ts).
// Imports nothing: global setup runs through Vite's module runner, which cannot load the stack's CJS deps.
const STOP = Symbol.for("voiceassist.testStack.stop");

export default function setup() {
  return async () => {
    await (globalThis as { [STOP]?: () => Promise<void> })[STOP]?.();
  };
}
