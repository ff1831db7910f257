// bench:flags in process: our pure evaluator (src/flags/evaluate.ts) against the Unleash Node SDK's local
// evaluation (unleash-client, bootstrapped offline), same document, same contexts, same process. First both
// engines must agree on every flag × context (disagreements are reported, never hidden); then warm-up and
// interleaved timed rounds; the median ops/s of each is reported.
import { type Context, InMemStorageProvider, Unleash } from "unleash-client";
import { compile, evaluate, evaluateAll, type RuleSet } from "../../src/flags/evaluate.ts";
import { snapshotFromClientFeatures } from "../../src/flags/interchange.ts";
import type { ClientFeatures, EvaluationContext } from "../../src/flags/model.ts";

export interface Rate {
  /** Evaluations (one flag for one context) per second: median, min and max of the rounds. */
  median: number;
  min: number;
  max: number;
  rounds: number;
}

export interface Disagreement {
  flag: string;
  /** random: both engines pick the variant at random for this context (by design), so no answer is wrong. */
  kind: "enabled" | "variant" | "payload" | "random";
  count: number;
  example: { context: EvaluationContext; ours: unknown; unleash: unknown };
}

export interface InProcessResult {
  flags: number;
  contexts: number;
  compile_ms: number;
  sdk_ready_ms: number;
  agreement: {
    checked: number;
    enabled_mismatches: number;
    variant_mismatches: number;
    payload_mismatches: number;
    enabled_share: number;
    flags: Disagreement[];
  };
  ours: { evaluate: Rate; evaluateAll: Rate };
  unleash: { isEnabled: Rate; getVariant: Rate; all: Rate };
  round_ms: number;
}

// The result sink: keeps the JIT from dropping work whose result is unused.
let sink = 0;

/** The SDK, offline: bootstrapped from the document, never polling, no metrics, nothing written to disk. */
export async function offlineUnleash(doc: ClientFeatures): Promise<Unleash> {
  const unleash = new Unleash({
    appName: "bench-flags",
    url: "http://127.0.0.1:9/api/", // never called: refreshInterval 0 turns polling off
    refreshInterval: 0,
    disableMetrics: true,
    storageProvider: new InMemStorageProvider(),
    skipInstanceCountWarning: true,
    // biome-ignore lint/suspicious/noExplicitAny: the SDK's FeatureInterface is the same JSON with narrower types
    bootstrap: { data: doc.features as any, segments: (doc.segments ?? []) as any },
  });
  const problems: string[] = [];
  unleash.on("error", (e: unknown) => problems.push(String(e)));
  unleash.on("warn", (w: unknown) => problems.push(String(w)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`unleash-client not ready in 10 s: ${problems.join("; ")}`)),
      10_000,
    );
    unleash.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const loaded = unleash.getFeatureToggleDefinitions()?.length ?? 0;
  if (loaded !== doc.features.length) {
    throw new Error(`unleash-client holds ${loaded} of ${doc.features.length} bootstrapped flags`);
  }
  return unleash;
}

/** A context as the SDK types it (currentTime a Date), built before timing so that neither engine pays for it. */
export const sdkContext = (context: EvaluationContext): Context => {
  const { currentTime, ...rest } = context;
  return currentTime === undefined ? rest : { ...rest, currentTime: new Date(currentTime) };
};

const samePayload = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Every flag × context through both engines: enabled, variant name and payload must match. */
export function agreement(
  ruleSet: RuleSet,
  unleash: Unleash,
  keys: readonly string[],
  contexts: readonly EvaluationContext[],
  sdkContexts: readonly Context[],
): InProcessResult["agreement"] {
  const byFlag = new Map<string, Disagreement>();
  const note = (
    flag: string,
    kind: Disagreement["kind"],
    context: EvaluationContext,
    ours: unknown,
    theirs: unknown,
  ) => {
    const id = `${flag}\u0000${kind}`;
    const seen = byFlag.get(id);
    if (seen) seen.count++;
    else byFlag.set(id, { flag, kind, count: 1, example: { context, ours, unleash: theirs } });
  };
  let checked = 0;
  let enabled = 0;
  const tally = { enabled: 0, variant: 0, payload: 0 };
  for (const [i, context] of contexts.entries()) {
    const theirs = sdkContexts[i] as Context;
    for (const key of keys) {
      checked++;
      const ours = evaluate(ruleSet, key, context);
      const on = unleash.isEnabled(key, theirs);
      const variant = unleash.getVariant(key, theirs);
      if (on) enabled++;
      if (ours.enabled !== on) {
        tally.enabled++;
        note(key, "enabled", context, { enabled: ours.enabled, reason: ours.reason }, { enabled: on });
        continue;
      }
      if (on && ours.variant.name !== variant.name) {
        // Unleash picks at random when the variants' stickiness field is missing from the context, and so do
        // we: when both engines answer differently from one call to the next, the difference is that.
        const spread = (pick: () => string) => new Set(Array.from({ length: 12 }, pick)).size;
        const random =
          spread(() => evaluate(ruleSet, key, context).variant.name) > 1 &&
          spread(() => unleash.getVariant(key, theirs).name) > 1;
        if (random) {
          note(key, "random", context, ours.variant.name, variant.name);
          continue;
        }
        tally.variant++;
        note(key, "variant", context, ours.variant.name, variant.name);
      } else if (on && !samePayload(ours.variant.payload, variant.payload)) {
        tally.payload++;
        note(key, "payload", context, ours.variant.payload, variant.payload);
      }
    }
  }
  return {
    checked,
    enabled_mismatches: tally.enabled,
    variant_mismatches: tally.variant,
    payload_mismatches: tally.payload,
    enabled_share: enabled / Math.max(1, checked),
    flags: [...byFlag.values()].sort((a, b) => b.count - a.count),
  };
}

type Pass = () => void;

/** Runs `pass` (one flag × context sweep) until `ms` have gone by; returns sweeps per second. */
function measure(pass: Pass, sweeps: number): number {
  const t0 = performance.now();
  for (let i = 0; i < sweeps; i++) pass();
  return (sweeps * 1000) / (performance.now() - t0);
}

export async function runInProcess(
  doc: ClientFeatures,
  contexts: EvaluationContext[],
  options: { rounds: number; roundMs: number; warmUpMs: number; say: (s: string) => void },
): Promise<InProcessResult> {
  const { say } = options;
  let t0 = performance.now();
  const ruleSet = compile(snapshotFromClientFeatures(doc, 1), {
    onError: (flag, _version, message) => say(`our compile: flag ${flag} does not compile: ${message}`),
  });
  const compileMs = performance.now() - t0;
  t0 = performance.now();
  const unleash = await offlineUnleash(doc);
  const sdkReadyMs = performance.now() - t0;
  try {
    const keys = ruleSet.keys;
    const perSweep = keys.length * contexts.length;
    say(`agreement: ${keys.length} flags × ${contexts.length} contexts through both engines`);
    const sdkContexts = contexts.map(sdkContext);
    const agreed = agreement(ruleSet, unleash, keys, contexts, sdkContexts);
    say(
      `agreement: ${agreed.enabled_mismatches} enabled, ${agreed.variant_mismatches} variant, ${agreed.payload_mismatches} payload mismatches of ${agreed.checked} (${(100 * agreed.enabled_share).toFixed(1)} % enabled)`,
    );

    const passes: Record<string, Pass> = {
      "ours.evaluate": () => {
        let s = 0;
        for (const context of contexts) for (const key of keys) if (evaluate(ruleSet, key, context).enabled) s++;
        sink += s;
      },
      "ours.evaluateAll": () => {
        let s = 0;
        for (const context of contexts) {
          const all = evaluateAll(ruleSet, context);
          for (const key in all) if ((all[key] as { enabled: boolean }).enabled) s++;
        }
        sink += s;
      },
      "unleash.isEnabled": () => {
        let s = 0;
        for (const context of sdkContexts) for (const key of keys) if (unleash.isEnabled(key, context)) s++;
        sink += s;
      },
      "unleash.getVariant": () => {
        let s = 0;
        for (const context of sdkContexts)
          for (const key of keys) if (unleash.getVariant(key, context).feature_enabled) s++;
        sink += s;
      },
      // What Unleash's frontend API does per request: every definition, getVariant each.
      "unleash.all": () => {
        let s = 0;
        for (const context of sdkContexts) {
          for (const feature of unleash.getFeatureToggleDefinitions() ?? []) {
            if (unleash.getVariant(feature.name, context).feature_enabled) s++;
          }
        }
        sink += s;
      },
    };
    // Warm-up: each pass until warmUpMs, which also tells how many sweeps fill a round.
    const sweepsPerRound: Record<string, number> = {};
    for (const [name, pass] of Object.entries(passes)) {
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < options.warmUpMs) {
        pass();
        n++;
      }
      const sweepMs = (performance.now() - start) / n;
      sweepsPerRound[name] = Math.max(1, Math.round(options.roundMs / sweepMs));
    }
    // Rounds interleave the engines, so that the machine's noisy moments fall on all of them alike.
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(passes).map((k) => [k, []]));
    for (let round = 0; round < options.rounds; round++) {
      for (const [name, pass] of Object.entries(passes)) {
        samples[name]?.push(measure(pass, sweepsPerRound[name] as number) * perSweep);
      }
    }
    const rate = (name: string): Rate => {
      const sorted = [...(samples[name] as number[])].sort((a, b) => a - b);
      return {
        median: sorted[Math.floor(sorted.length / 2)] as number,
        min: sorted[0] as number,
        max: sorted[sorted.length - 1] as number,
        rounds: sorted.length,
      };
    };
    if (sink === -1) say("(sink)");
    return {
      flags: keys.length,
      contexts: contexts.length,
      compile_ms: compileMs,
      sdk_ready_ms: sdkReadyMs,
      agreement: agreed,
      ours: { evaluate: rate("ours.evaluate"), evaluateAll: rate("ours.evaluateAll") },
      unleash: {
        isEnabled: rate("unleash.isEnabled"),
        getVariant: rate("unleash.getVariant"),
        all: rate("unleash.all"),
      },
      round_ms: options.roundMs,
    };
  } finally {
    unleash.destroy();
  }
}
