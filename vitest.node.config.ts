import { defineConfig } from "vitest/config";

// Node-side suites: the local stack (PGlite, Neon proxy, Upstash server) and other scripts.
export default defineConfig({
  test: {
    name: "node",
    include: ["test/node/**/*.test.ts"],
    environment: "node",
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
