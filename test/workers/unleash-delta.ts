// Unleash's delta events (client specification files 19 and 20), which turn one client-features state into
// the next: the spec states some cases as events. We serve no delta route, so this lives with the tests.
import type { ClientFeatures, Segment, UnleashFeature } from "../../src/flags/model.ts";

export type DeltaEvent =
  | { eventId: number; type: "hydration"; features: UnleashFeature[]; segments?: Segment[] }
  | { eventId: number; type: "feature-updated"; feature: UnleashFeature }
  | { eventId: number; type: "feature-removed"; featureName: string; project?: string }
  | { eventId: number; type: "segment-updated"; segment: Segment }
  | { eventId: number; type: "segment-removed"; segmentId: number };

export const EMPTY_CLIENT_FEATURES: ClientFeatures = Object.freeze({ version: 0, features: [], segments: [] });

/** The state after `events`, in order; its version is the last event's id. Unknown event types are skipped. */
export function applyDeltaEvents(state: ClientFeatures, events: readonly DeltaEvent[]): ClientFeatures {
  let features = new Map(state.features.map((feature) => [feature.name, feature]));
  let segments = new Map((state.segments ?? []).map((segment) => [segment.id, segment]));
  let version = state.version;
  for (const event of events) {
    switch (event.type) {
      case "hydration":
        features = new Map(event.features.map((feature) => [feature.name, feature]));
        segments = new Map((event.segments ?? []).map((segment) => [segment.id, segment]));
        break;
      case "feature-updated":
        features.set(event.feature.name, event.feature);
        break;
      case "feature-removed":
        features.delete(event.featureName);
        break;
      case "segment-updated":
        segments.set(event.segment.id, event.segment);
        break;
      case "segment-removed":
        segments.delete(event.segmentId);
        break;
      default:
        continue; // a newer event type: Unleash clients skip what they do not know
    }
    version = event.eventId;
  }
  return { ...state, version, features: [...features.values()], segments: [...segments.values()] };
}
