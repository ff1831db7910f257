import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config.ts";
import { BUILT_IN_PRICES, costUsd, priceFor } from "../../src/llm/pricing.ts";

const noOverrides = { LLM_PRICES: {} };

describe("priceFor", () => {
  it("reads the built-in table", () => {
    expect(priceFor(noOverrides, "gpt-4o-mini")).toEqual({ input: 0.15, output: 0.6 });
    expect(priceFor(noOverrides, "gpt-4.1-nano")).toEqual({ input: 0.1, output: 0.4 });
    expect(priceFor(noOverrides, "local-extractive-v1")).toEqual({ input: 0, output: 0 });
    expect(priceFor(noOverrides, "text-embedding-3-small")).toEqual({ input: 0.02, output: 0 });
  });

  it("prices a dated snapshot as its base model", () => {
    expect(priceFor(noOverrides, "gpt-4o-mini-2024-07-18")).toEqual(BUILT_IN_PRICES["gpt-4o-mini"]);
    expect(priceFor(noOverrides, "o4-mini-2025-04-16")).toEqual(BUILT_IN_PRICES["o4-mini"]);
  });

  it("lets configured prices win over the built-in table, and add models", () => {
    const config = { LLM_PRICES: { "gpt-4o-mini": { input: 1, output: 2 }, "my-model": { input: 3, output: 4 } } };
    expect(priceFor(config, "gpt-4o-mini")).toEqual({ input: 1, output: 2 });
    expect(priceFor(config, "gpt-4o-mini-2024-07-18")).toEqual({ input: 1, output: 2 });
    expect(priceFor(config, "my-model")).toEqual({ input: 3, output: 4 });
    expect(priceFor(config, "gpt-4o")).toEqual({ input: 2.5, output: 10 });
  });

  it("prefers an exact snapshot entry over its base name", () => {
    const config = { LLM_PRICES: { "gpt-4o-2024-05-13": { input: 5, output: 15 } } };
    expect(priceFor(config, "gpt-4o-2024-05-13")).toEqual({ input: 5, output: 15 });
    expect(priceFor(config, "gpt-4o-2024-08-06")).toEqual({ input: 2.5, output: 10 });
  });

  it("knows nothing of unknown models, object keys included", () => {
    expect(priceFor(noOverrides, "mystery-model")).toBeUndefined();
    expect(priceFor(noOverrides, "constructor")).toBeUndefined();
    expect(priceFor(noOverrides, "gpt-4o-mini-latest")).toBeUndefined();
  });

  it("reads LLM_PRICES from the environment", () => {
    const result = parseConfig({
      DATABASE_URL: "postgres://u:p@db.example.com/app",
      JWT_SIGNING_KEYS: "k1:0123456789abcdef0123456789abcdef",
      LLM_PRICES: '{"gpt-4o-mini": {"input": 0.2, "output": 0.8}}',
    });
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    expect(priceFor(result.config, "gpt-4o-mini-2024-07-18")).toEqual({ input: 0.2, output: 0.8 });
  });
});

describe("costUsd", () => {
  it("charges prompt and completion tokens at their own rates per million", () => {
    const price = { input: 0.15, output: 0.6 };
    expect(costUsd(price, { promptTokens: 1_000_000, completionTokens: 0 })).toBe(0.15);
    expect(costUsd(price, { promptTokens: 1_000, completionTokens: 500 })).toBe(0.00045);
  });

  it("rounds to 1e-8 dollars", () => {
    expect(costUsd({ input: 0.15, output: 0.6 }, { promptTokens: 1, completionTokens: 0 })).toBe(1.5e-7);
    expect(costUsd({ input: 0.1, output: 0.4 }, { promptTokens: 0, completionTokens: 1 })).toBe(4e-7);
    expect(costUsd({ input: 0.013, output: 0 }, { promptTokens: 1, completionTokens: 0 })).toBe(1e-8);
    expect(costUsd({ input: 0.004, output: 0 }, { promptTokens: 1, completionTokens: 0 })).toBe(0);
  });

  it("is zero for free models and undefined without a price", () => {
    const usage = { promptTokens: 1234, completionTokens: 56 };
    expect(costUsd(priceFor(noOverrides, "local-extractive-v1"), usage)).toBe(0);
    expect(costUsd(priceFor(noOverrides, "mystery-model"), usage)).toBeUndefined();
  });
});
