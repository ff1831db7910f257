// The Unleash client-API document (what Unleash serves SDKs, and the specification's `state`) as a Snapshot.
import type { ClientFeatures, FlagRules, Snapshot, UnleashFeature } from "./model.ts";

/** An Unleash feature as a boolean flag, on in every environment, unscheduled. */
export function flagFromUnleash(feature: UnleashFeature): FlagRules {
  return {
    key: feature.name,
    type: "boolean",
    enabled: feature.enabled,
    environments: [],
    strategies: feature.strategies ?? [],
    variants: feature.variants ?? [],
    dependencies: feature.dependencies ?? [],
    defaultValue: false,
    schedule: null,
    version: 1,
  };
}

export function snapshotFromClientFeatures(doc: ClientFeatures, version = doc.version): Snapshot {
  return {
    version,
    builtAt: new Date().toISOString(),
    flags: doc.features.map(flagFromUnleash),
    segments: doc.segments ?? [],
    overrides: {},
  };
}
