import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Contract tests (docs/contracts.md): Pact consumers write pact files, the provider verifies the committed ones
// against `npm run dev`, and message pacts against the code that builds the messages. Node, not workerd: Pact's
// core is a native library.
export default defineConfig({
  resolve: {
    // The message producers import the app's own modules; a few read workerd's module, absent in Node.
    alias: {
      "cloudflare:workers": fileURLToPath(new URL("test/contract/support/cloudflare-workers.ts", import.meta.url)),
    },
  },
  test: {
    name: "contract",
    include: ["test/contract/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 240_000,
  },
});
