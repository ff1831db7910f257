import { fileURLToPath } from "node:url";
import type { UserConfig } from "vite";
import { defineConfig, mergeConfig } from "vitest/config";
import workers from "../../../vitest.config.ts";

// `npm run fuzz`: the Workers-pool config with a longer campaign. FUZZ_RUNS requests in all (default 50,000),
// from FUZZ_SEED (default: random, printed), replaying FUZZ_PATH, only the tests whose name contains FUZZ_ONLY.
const root = fileURLToPath(new URL("../../..", import.meta.url));
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const fuzz = {
  requests: Number(process.env.FUZZ_RUNS ?? 50_000),
  seed,
  ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}),
  ...(process.env.FUZZ_ONLY ? { only: process.env.FUZZ_ONLY } : {}),
};
console.log(`fuzz: ${fuzz.requests} requests, seed ${seed} (replay with FUZZ_SEED=${seed})`);

export default defineConfig(async (env) => {
  const base = (await (workers as (e: typeof env) => Promise<UserConfig>)(env)) as UserConfig;
  const merged = mergeConfig(base, { root, test: { provide: { fuzz } } });
  // mergeConfig concatenates arrays: the include list is replaced, not extended.
  return { ...merged, test: { ...merged.test, include: ["test/workers/fuzz-openapi.test.ts"] } };
});
