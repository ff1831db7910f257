// Unleash client-API features <-> our flag definitions. Import keeps every Unleash field (unknown ones too) so
// that `GET /api/client/features` serves back what was imported; the platform's own fields (value type,
// environments, default value, schedule, tags) are kept from the existing flag on a merge.
import type {
  ClientFeatures,
  Dependency,
  FlagDefinition,
  FlagRules,
  Segment,
  Snapshot,
  Strategy,
  UnleashFeature,
  Variant,
} from "./model.ts";

/** An Unleash feature as import parsed it (strategies and variants defaulted to empty lists). */
export interface ImportedFeature {
  name: string;
  description?: string | null;
  type?: string;
  enabled: boolean;
  strategies: Strategy[];
  variants: Variant[];
  dependencies?: Dependency[];
  [field: string]: unknown;
}

export function definitionFromUnleash(feature: ImportedFeature, existing?: FlagDefinition): FlagDefinition {
  const { name: _name, description, type, enabled, strategies, variants, dependencies, ...unleash } = feature;
  return {
    description: description ?? "",
    type: existing?.type ?? "boolean",
    kind: type ?? "release",
    enabled,
    environments: existing?.environments ?? [],
    strategies,
    variants,
    dependencies: dependencies ?? [],
    defaultValue: existing?.defaultValue ?? false,
    schedule: existing?.schedule ?? null,
    tags: existing?.tags ?? [],
    unleash: { ...unleash, ...(description === null ? { description: null } : {}) },
  };
}

/**
 * A flag as an Unleash SDK should see it in `environment` at `now`: Unleash has no environments list,
 * schedule or overrides, so a flag outside its environments or schedule is served disabled.
 */
export function unleashFromFlag(key: string, definition: FlagDefinition, environment?: string, now = Date.now()) {
  const inEnvironment =
    !environment || definition.environments.length === 0 || definition.environments.includes(environment);
  const { schedule } = definition;
  const inSchedule =
    !schedule ||
    ((!schedule.start || Date.parse(schedule.start) <= now) && (!schedule.end || now < Date.parse(schedule.end)));
  const feature: UnleashFeature = {
    name: key,
    description: definition.description,
    type: definition.kind,
    ...definition.unleash,
    enabled: definition.enabled && inEnvironment && inSchedule,
    strategies: definition.strategies,
    variants: definition.variants,
  };
  if (definition.dependencies.length) feature.dependencies = definition.dependencies;
  return feature;
}

export const clientFeatures = (version: number, features: UnleashFeature[], segments: Segment[]): ClientFeatures => ({
  version: 2,
  features,
  segments,
  meta: { revisionId: version, etag: `"${version}"`, queryHash: "" },
});

/** The rules evaluation needs from a stored definition. */
export const rulesOf = (key: string, definition: FlagDefinition, version: number): FlagRules => ({
  key,
  type: definition.type,
  enabled: definition.enabled,
  environments: definition.environments,
  strategies: definition.strategies,
  variants: definition.variants,
  dependencies: definition.dependencies,
  defaultValue: definition.defaultValue,
  schedule: definition.schedule,
  version,
  presentation: { description: definition.description, kind: definition.kind, unleash: definition.unleash },
});

/** An Unleash client-API document (what Unleash serves SDKs, the specification's `state`) as a snapshot. */
export function snapshotFromClientFeatures(doc: ClientFeatures, version = doc.version): Snapshot {
  return {
    version,
    builtAt: new Date().toISOString(),
    flags: doc.features.map((feature) =>
      rulesOf(
        feature.name,
        definitionFromUnleash({ ...feature, strategies: feature.strategies ?? [], variants: feature.variants ?? [] }),
        1,
      ),
    ),
    segments: doc.segments ?? [],
    overrides: {},
  };
}
