// The official Unleash client specification (@unleash/client-specification), every file, for the flag suites.
import spec01 from "@unleash/client-specification/specifications/01-simple-examples.json";
import spec02 from "@unleash/client-specification/specifications/02-user-with-id-strategy.json";
import spec03 from "@unleash/client-specification/specifications/03-gradual-rollout-user-id-strategy.json";
import spec04 from "@unleash/client-specification/specifications/04-gradual-rollout-session-id-strategy.json";
import spec05 from "@unleash/client-specification/specifications/05-gradual-rollout-random-strategy.json";
import spec06 from "@unleash/client-specification/specifications/06-remote-address-strategy.json";
import spec07 from "@unleash/client-specification/specifications/07-multiple-strategies.json";
import spec08 from "@unleash/client-specification/specifications/08-variants.json";
import spec09 from "@unleash/client-specification/specifications/09-strategy-constraints.json";
import spec10 from "@unleash/client-specification/specifications/10-flexible-rollout-strategy.json";
import spec11 from "@unleash/client-specification/specifications/11-strategy-constraints-edge-cases.json";
import spec12 from "@unleash/client-specification/specifications/12-custom-stickiness.json";
import spec13 from "@unleash/client-specification/specifications/13-constraint-operators.json";
import spec14 from "@unleash/client-specification/specifications/14-constraint-semver-operators.json";
import spec15 from "@unleash/client-specification/specifications/15-global-constraints.json";
import spec16 from "@unleash/client-specification/specifications/16-strategy-variants.json";
import spec17 from "@unleash/client-specification/specifications/17-dependent-features.json";
import spec18 from "@unleash/client-specification/specifications/18-utf8-flag-names.json";
import spec19 from "@unleash/client-specification/specifications/19-delta-api-hydration.json";
import spec20 from "@unleash/client-specification/specifications/20-delta-api-events.json";
import spec21 from "@unleash/client-specification/specifications/21-regex-constraint-operators.json";
import spec22 from "@unleash/client-specification/specifications/22-cidr-constraint-operators.json";
import index from "@unleash/client-specification/specifications/index.json";
import { snapshotFromClientFeatures } from "../../src/flags/interchange.ts";
import type {
  ClientFeatures,
  EvaluationContext,
  FlagRules,
  Payload,
  Segment,
  Snapshot,
  UnleashFeature,
} from "../../src/flags/model.ts";
import { applyDeltaEvents, type DeltaEvent, EMPTY_CLIENT_FEATURES } from "./unleash-delta.ts";

export { index as specIndex };

export interface SpecFile {
  name: string;
  state: { version?: number; features?: UnleashFeature[]; segments?: Segment[]; events?: DeltaEvent[] };
  tests?: { description: string; context: EvaluationContext; toggleName: string; expectedResult: boolean }[];
  variantTests?: {
    description: string;
    context: EvaluationContext;
    toggleName: string;
    expectedResult: { name: string; payload?: Payload; enabled: boolean; feature_enabled: boolean };
  }[];
}

export const specFiles: Record<string, SpecFile> = Object.fromEntries(
  Object.entries({
    "01-simple-examples.json": spec01,
    "02-user-with-id-strategy.json": spec02,
    "03-gradual-rollout-user-id-strategy.json": spec03,
    "04-gradual-rollout-session-id-strategy.json": spec04,
    "05-gradual-rollout-random-strategy.json": spec05,
    "06-remote-address-strategy.json": spec06,
    "07-multiple-strategies.json": spec07,
    "08-variants.json": spec08,
    "09-strategy-constraints.json": spec09,
    "10-flexible-rollout-strategy.json": spec10,
    "11-strategy-constraints-edge-cases.json": spec11,
    "12-custom-stickiness.json": spec12,
    "13-constraint-operators.json": spec13,
    "14-constraint-semver-operators.json": spec14,
    "15-global-constraints.json": spec15,
    "16-strategy-variants.json": spec16,
    "17-dependent-features.json": spec17,
    "18-utf8-flag-names.json": spec18,
    "19-delta-api-hydration.json": spec19,
    "20-delta-api-events.json": spec20,
    "21-regex-constraint-operators.json": spec21,
    "22-cidr-constraint-operators.json": spec22,
  }).map(([file, spec]) => [file, spec as unknown as SpecFile]),
);

/** A spec file's state as Unleash client features (delta events applied to an empty state). */
export function clientFeaturesOf({ state }: SpecFile): ClientFeatures {
  if (state.events) return applyDeltaEvents(EMPTY_CLIENT_FEATURES, state.events);
  return { version: state.version ?? 0, features: state.features ?? [], segments: state.segments ?? [] };
}

/** A spec file's state as our snapshot, through the one adapter. */
export const snapshotOf = (spec: SpecFile): Snapshot => snapshotFromClientFeatures(clientFeaturesOf(spec));

/** A boolean flag that is on for everyone, with `patch` applied: the starting point of the unit suites. */
export const flagRules = (key: string, patch: Partial<FlagRules> = {}): FlagRules => ({
  key,
  type: "boolean",
  enabled: true,
  environments: [],
  strategies: [],
  variants: [],
  dependencies: [],
  defaultValue: false,
  schedule: null,
  version: 1,
  ...patch,
});
