// The bench:flags workload: a deterministic (seeded) Unleash client-API document of realistic flags and a set
// of realistic evaluation contexts. The same seed gives the same document and contexts, byte for byte.
//
// The document is written in the form the Unleash server stores, so that importing it there changes nothing
// that evaluation depends on: variant weights as Unleash's `fixVariantWeights` sets them (variable variants
// share what the fixed ones leave, equally, the first ones one more) and variants sorted by name; every
// flexibleRollout strategy with explicit rollout, stickiness and groupId; at least one strategy per flag (an
// environment turned on without one gets Unleash's default strategy); one level of dependencies, parents
// before their children. What the Unleash server refuses anyway (inverted REGEX constraints) is kept on
// purpose: both engines evaluate it in process, and the HTTP comparison leaves those flags out on both sides.
import type {
  ClientFeatures,
  Constraint,
  EvaluationContext,
  Segment,
  Strategy,
  UnleashFeature,
  Variant,
} from "../../src/flags/model.ts";

export interface WorkloadOptions {
  seed: number;
  flags: number;
  contexts: number;
  /** ISO time the contexts' `currentTime` is spread around (DATE_* constraints are placed around it too). */
  anchor: string;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  seed: 20261126,
  flags: 200,
  contexts: 1000,
  anchor: "2026-11-26T12:00:00.000Z",
};

export interface Workload {
  doc: ClientFeatures & { segments: Segment[] };
  contexts: EvaluationContext[];
  /** Custom context fields the constraints and stickiness use (Unleash needs them declared). */
  contextFields: { name: string; stickiness: boolean }[];
  /** Counts by kind, for the report. */
  stats: Record<string, number>;
}

/** mulberry32: small, fast, good enough for test data, and the same everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Dice {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  /** `n` distinct items (fewer when there are not that many). */
  some<T>(items: readonly T[], n: number): T[] {
    const pool = [...items];
    const out: T[] = [];
    while (out.length < n && pool.length) out.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0] as T);
    return out;
  }
  /** Picks a key by weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((sum, [, w]) => sum + w, 0);
    for (const [key, w] of entries) {
      r -= w;
      if (r < 0) return key;
    }
    return (entries[entries.length - 1] as [K, number])[0];
  }
  hex(length: number): string {
    let s = "";
    while (s.length < length) s += Math.floor(this.next() * 16).toString(16);
    return s;
  }
}

// ---- the population the contexts come from -------------------------------------------------------------------

const TENANTS = [
  "acme",
  "globex",
  "initech",
  "umbrella",
  "hooli",
  "stark",
  "wayne",
  "wonka",
  "tyrell",
  "cyberdyne",
  "soylent",
  "aperture",
  "blackmesa",
  "vandelay",
  "pied-piper",
  "dunder-mifflin",
  "massive-dynamic",
  "oscorp",
  "gringotts",
  "monsters-inc",
];
const PLANS = ["free", "starter", "pro", "business", "enterprise"];
const COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "IN", "BR", "JP", "CA", "AU", "SE", "PL"];
const REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1", "ap-northeast-1"];
const PLATFORMS = ["web", "ios", "android", "desktop"];
const APPS = ["voiceassist-web", "voiceassist-ios", "voiceassist-android", "voiceassist-api", "voiceassist-desktop"];
const ENVIRONMENTS = ["production", "production", "production", "staging", "development"];
const LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR", "nl-NL"];
const DOMAINS = ["example.com", "example.org", "mail.test", "corp.test", "voiceassist.test"];
/** Client networks: RFC 1918 and documentation ranges only (these are context data, nothing is sent there). */
const NETWORKS = ["10.12", "10.40", "172.16", "172.20", "192.168.1", "192.168.7", "203.0.113", "198.51.100"];
const USERS = 5000;

export const CONTEXT_FIELDS = [
  { name: "tenant", stickiness: true },
  { name: "plan", stickiness: false },
  { name: "country", stickiness: false },
  { name: "region", stickiness: false },
  { name: "platform", stickiness: false },
  { name: "appVersion", stickiness: false },
  { name: "locale", stickiness: false },
  { name: "email", stickiness: false },
  { name: "seats", stickiness: false },
  { name: "accountAgeDays", stickiness: false },
  { name: "deviceId", stickiness: true },
  { name: "orgId", stickiness: true },
];

const userId = (n: number) => `u-${String(n).padStart(5, "0")}`;
const semver = (d: Dice) => `${d.pick([3, 4, 4, 5, 5, 5])}.${d.int(0, 14)}.${d.int(0, 9)}`;
const isoAround = (anchor: number, d: Dice, days: number) =>
  new Date(anchor + Math.round((d.next() * 2 - 1) * days * 86_400_000)).toISOString();

function makeContexts(d: Dice, n: number, anchor: number): EvaluationContext[] {
  const out: EvaluationContext[] = [];
  for (let i = 0; i < n; i++) {
    const signedIn = d.chance(0.8);
    const user = d.int(1, USERS);
    const tenant = d.pick(TENANTS);
    const network = d.pick(NETWORKS);
    const hostBits = network.split(".").length === 2 ? `${d.int(0, 255)}.${d.int(1, 254)}` : `${d.int(1, 254)}`;
    const properties: Record<string, string> = {
      tenant,
      orgId: `org-${TENANTS.indexOf(tenant) * 7 + d.int(0, 6)}`,
      plan: d.pick(PLANS),
      country: d.pick(COUNTRIES),
      region: d.pick(REGIONS),
      platform: d.pick(PLATFORMS),
      appVersion: d.chance(0.05) ? `${semver(d)}-beta.${d.int(1, 5)}` : semver(d),
      locale: d.pick(LOCALES),
      seats: String(d.pick([1, 1, 3, 5, 10, 25, 50, 100, 250, 1000])),
      accountAgeDays: String(d.int(0, 1500)),
      deviceId: d.hex(16),
    };
    if (signedIn) properties.email = `${userId(user)}@${d.chance(0.5) ? `${tenant}.test` : d.pick(DOMAINS)}`;
    out.push({
      ...(signedIn ? { userId: userId(user) } : {}),
      sessionId: d.hex(24),
      remoteAddress: `${network}.${hostBits}`,
      appName: d.pick(APPS),
      environment: d.pick(ENVIRONMENTS),
      currentTime: isoAround(anchor, d, 10),
      properties,
    });
  }
  return out;
}

// ---- constraints -------------------------------------------------------------------------------------------------

type Family = "in" | "str" | "num" | "date" | "semver" | "regex";

function constraint(d: Dice, family: Family, anchor: number): Constraint {
  const inverted = d.chance(0.15);
  switch (family) {
    case "in": {
      const [contextName, pool] = d.pick([
        ["plan", PLANS],
        ["country", COUNTRIES],
        ["tenant", TENANTS],
        ["appName", APPS],
        ["environment", ["production", "staging", "development"]],
        ["platform", PLATFORMS],
        ["region", REGIONS],
        ["userId", Array.from({ length: 200 }, (_, i) => userId(1 + i * 25))],
      ] as [string, string[]][]);
      const values = d.some(pool, d.int(1, Math.max(1, Math.ceil(pool.length / 2))));
      return { contextName, operator: d.chance(0.7) ? "IN" : "NOT_IN", values, ...(inverted ? { inverted } : {}) };
    }
    case "str": {
      const kind = d.pick(["STR_ENDS_WITH", "STR_STARTS_WITH", "STR_CONTAINS"] as const);
      const caseInsensitive = d.chance(0.4);
      let contextName: string;
      let values: string[];
      if (kind === "STR_ENDS_WITH") {
        contextName = "email";
        values = d.some([...DOMAINS, ...TENANTS.slice(0, 6).map((t) => `${t}.test`)], d.int(1, 3));
        if (caseInsensitive) values = values.map((v) => v.toUpperCase());
      } else if (kind === "STR_STARTS_WITH") {
        [contextName, values] = d.pick([
          ["locale", d.some(["en", "de", "fr", "es", "ja", "pt"], d.int(1, 2))],
          ["region", d.some(["eu-", "us-", "ap-"], 1)],
          ["userId", d.some(["u-0", "u-1", "u-2", "u-3", "u-4"], d.int(1, 2))],
        ] as [string, string[]][]);
        if (caseInsensitive) values = values.map((v) => v.toUpperCase());
      } else {
        [contextName, values] = d.pick([
          ["email", d.some(["acme", "globex", "hooli", "corp", "example"], d.int(1, 2))],
          ["tenant", d.some(["dyn", "mes", "on", "er"], d.int(1, 2))],
          ["locale", d.some(["-US", "-GB", "-DE"], 1)],
        ] as [string, string[]][]);
        if (caseInsensitive) values = values.map((v) => (d.chance(0.5) ? v.toUpperCase() : v));
      }
      return {
        contextName,
        operator: kind,
        values,
        ...(caseInsensitive ? { caseInsensitive } : {}),
        ...(inverted ? { inverted } : {}),
      };
    }
    case "num": {
      const operator = d.pick(["NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"] as const);
      const [contextName, value] = d.pick([
        ["seats", String(d.pick([1, 5, 10, 25, 50, 100, 250]))],
        ["accountAgeDays", String(d.pick([7, 30, 90, 180, 365, 730]))],
      ] as [string, string][]);
      return { contextName, operator, value, ...(inverted ? { inverted } : {}) };
    }
    case "date": {
      // Around the anchor: launches a few days ago or ahead, promotions ending soon, betas that ended long ago.
      const operator = d.pick(["DATE_AFTER", "DATE_BEFORE"] as const);
      const value = new Date(anchor + Math.round((d.next() * 2 - 1) * 15 * 86_400_000))
        .toISOString()
        .replace(/\.\d{3}Z$/, ".000Z");
      return { contextName: "currentTime", operator, value, ...(inverted ? { inverted } : {}) };
    }
    case "semver": {
      const operator = d.pick(["SEMVER_EQ", "SEMVER_GT", "SEMVER_LT"] as const);
      const value =
        operator === "SEMVER_EQ"
          ? `${d.pick([4, 5])}.${d.int(0, 14)}.${d.int(0, 9)}`
          : `${d.pick([4, 5])}.${d.int(0, 14)}.0`;
      return { contextName: "appVersion", operator, value, ...(inverted ? { inverted } : {}) };
    }
    case "regex": {
      const caseInsensitive = d.chance(0.4);
      const [contextName, value] = d.pick([
        ["email", "^u-0[0-4][0-9]{3}@"],
        ["email", "@(acme|globex|initech)\\.test$"],
        ["email", "@CORP\\.TEST$"],
        ["userId", "^u-[0-9]*[02468]$"],
        ["userId", "^U-00[0-9]{3}$"],
        ["tenant", "^(stark|wayne|wonka)$"],
        ["tenant", "-(inc|dynamic)$"],
        ["appVersion", "^5\\.[0-9]+\\.[0-9]+$"],
        ["appVersion", "-beta\\.[0-9]+$"],
        ["locale", "^(en|de)-[A-Z]{2}$"],
        ["deviceId", "^[0-7]"],
        ["orgId", "^org-1[0-9]$"],
      ] as [string, string][]);
      return {
        contextName,
        operator: "REGEX",
        value,
        ...(caseInsensitive ? { caseInsensitive } : {}),
        // Unleash's server refuses inverted REGEX; its SDKs evaluate it. Rare, and counted.
        ...(d.chance(0.25) ? { inverted: true } : {}),
      };
    }
  }
}

function constraints(d: Dice, n: number, anchor: number): Constraint[] {
  return Array.from({ length: n }, () =>
    constraint(d, d.weighted<Family>({ in: 30, str: 20, num: 15, date: 10, semver: 15, regex: 10 }), anchor),
  );
}

// ---- variants --------------------------------------------------------------------------------------------------

/** Unleash's fixVariantWeights, then its sort by name: the form the server stores and serves. */
export function canonicalVariants(variants: Variant[]): Variant[] {
  const variable = variants.filter((v) => (v.weightType ?? "variable") === "variable");
  const fixed = variants.filter((v) => v.weightType === "fix");
  const fixedTotal = fixed.reduce((sum, v) => sum + v.weight, 0);
  const average = Math.floor((1000 - fixedTotal) / variable.length);
  let remainder = (1000 - fixedTotal) % variable.length;
  const shared = variable.map((v) => {
    const weight = average + (remainder > 0 ? 1 : 0);
    if (remainder > 0) remainder--;
    return { ...v, weight };
  });
  return [...shared, ...fixed].sort((a, b) => a.name.localeCompare(b.name));
}

const VARIANT_SETS = [
  ["control", "treatment"],
  ["control", "treatment-a", "treatment-b"],
  ["blue", "green", "red"],
  ["gpt-4o-mini", "gpt-4.1-mini", "local"],
  ["short", "medium", "long", "adaptive"],
  ["on-device", "edge"],
];

function payload(d: Dice, name: string, flag: string): Variant["payload"] {
  switch (d.weighted({ string: 40, json: 35, number: 15, csv: 10, none: 15 })) {
    case "string":
      return { type: "string", value: name };
    case "json":
      return {
        type: "json",
        value: JSON.stringify({ variant: name, flag, limit: d.int(1, 100), ratio: Math.round(d.next() * 100) / 100 }),
      };
    case "number":
      return { type: "number", value: String(d.int(1, 5000)) };
    case "csv":
      return { type: "csv", value: d.some(["alpha", "beta", "gamma", "delta", "epsilon"], 3).join(",") };
    default:
      return undefined;
  }
}

function variants(d: Dice, flag: string, stickiness: string): Variant[] {
  const names = d.pick(VARIANT_SETS);
  const out: Variant[] = names.map((name) => {
    const p = payload(d, name, flag);
    return { name, weight: 0, weightType: "variable", stickiness, ...(p ? { payload: p } : {}) };
  });
  // Sometimes one fixed share (a holdout), the rest variable.
  if (d.chance(0.3)) {
    const held = out[0] as Variant;
    held.weightType = "fix";
    held.weight = d.pick([50, 100, 200, 250]);
  }
  return canonicalVariants(out);
}

// ---- strategies ----------------------------------------------------------------------------------------------

type Kind = "default" | "flexibleRollout" | "userWithId" | "remoteAddress";

function strategy(
  d: Dice,
  kind: Kind,
  flag: string,
  anchor: number,
  segmentIds: number[],
  stats: Record<string, number>,
): Strategy {
  const count = (key: string) => {
    stats[key] = (stats[key] ?? 0) + 1;
  };
  count(`strategy.${kind}`);
  const s: Strategy = { name: kind, parameters: {}, constraints: [] };
  switch (kind) {
    case "default":
      break;
    case "flexibleRollout": {
      const stickiness = d.weighted({ default: 50, userId: 20, sessionId: 15, tenant: 8, orgId: 4, deviceId: 3 });
      count(`stickiness.${stickiness}`);
      s.parameters = {
        rollout: String(d.pick([0, 1, 5, 10, 20, 25, 33, 50, 50, 75, 90, 100, 100])),
        stickiness,
        groupId: d.chance(0.1) ? d.pick(["checkout-revamp", "voice-v2", "kb-ranking"]) : flag,
      };
      if (d.chance(0.2)) {
        s.variants = variants(d, flag, stickiness);
        count("strategy_variants");
      }
      break;
    }
    case "userWithId":
      s.parameters = {
        userIds: Array.from({ length: d.int(3, 60) }, () => userId(d.int(1, USERS))).join(","),
      };
      break;
    case "remoteAddress": {
      const ips = d.some(
        [
          "10.12.0.0/16",
          "10.40.3.0/24",
          "172.16.0.0/12",
          "192.168.1.0/24",
          "192.168.7.42",
          "203.0.113.0/25",
          "198.51.100.7",
          "198.51.100.128/26",
        ],
        d.int(1, 3),
      );
      s.parameters = { IPs: ips.join(", ") };
      count(`remoteAddress.${ips.some((ip) => ip.includes("/")) ? "cidr" : "ip"}`);
      break;
    }
  }
  const n = d.weighted({ 0: kind === "default" ? 10 : 45, 1: 30, 2: 20, 3: 10 });
  s.constraints = constraints(d, Number(n), anchor);
  for (const c of s.constraints)
    count(`operator.${c.operator}${c.inverted ? ".inverted" : ""}${c.caseInsensitive ? ".ci" : ""}`);
  if (segmentIds.length && d.chance(0.15)) {
    s.segments = d.some(segmentIds, d.int(1, 2)).sort((a, b) => a - b);
    count("strategy.with_segments");
  }
  return s;
}

// ---- segments and flags --------------------------------------------------------------------------------------------

function makeSegments(d: Dice, anchor: number): Segment[] {
  return [
    {
      id: 1,
      name: "beta-testers",
      constraints: [{ contextName: "tenant", operator: "IN", values: ["acme", "hooli", "stark", "wayne"] }],
    },
    {
      id: 2,
      name: "enterprise-eu",
      constraints: [
        { contextName: "plan", operator: "IN", values: ["business", "enterprise"] },
        { contextName: "region", operator: "STR_STARTS_WITH", values: ["eu-"] },
      ],
    },
    {
      id: 3,
      name: "mobile-5x",
      constraints: [
        { contextName: "platform", operator: "IN", values: ["ios", "android"] },
        { contextName: "appVersion", operator: "SEMVER_GT", value: "4.9.9" },
      ],
    },
    {
      id: 4,
      name: "internal-staff",
      constraints: [
        {
          contextName: "email",
          operator: "STR_ENDS_WITH",
          values: ["@corp.test", "@voiceassist.test"],
          caseInsensitive: true,
        },
      ],
    },
    {
      id: 5,
      name: "large-accounts",
      constraints: [constraint(d, "num", anchor), { contextName: "seats", operator: "NUM_GTE", value: "25" }],
    },
    {
      id: 6,
      name: "not-embargoed",
      constraints: [{ contextName: "country", operator: "NOT_IN", values: ["BR", "IN"] }],
    },
  ];
}

const AREAS = [
  "voice",
  "kb",
  "answers",
  "auth",
  "billing",
  "search",
  "ui",
  "mobile",
  "api",
  "admin",
  "ingest",
  "realtime",
];
const THINGS = [
  "noise-suppression",
  "barge-in",
  "hybrid-ranking",
  "reranker-v2",
  "streaming-answers",
  "citations-inline",
  "passkeys",
  "sso-okta",
  "usage-based-pricing",
  "new-checkout",
  "dark-mode",
  "onboarding-tour",
  "offline-cache",
  "push-v2",
  "rate-limit-relaxed",
  "bulk-import",
  "pdf-ocr",
  "semantic-cache",
  "vad-tuning",
  "latency-budget",
  "kill-switch",
  "maintenance-banner",
  "beta-badge",
  "audit-export",
];

export function generateWorkload(options: WorkloadOptions = DEFAULT_WORKLOAD): Workload {
  const d = new Dice(options.seed);
  const anchor = Date.parse(options.anchor);
  const stats: Record<string, number> = {};
  const count = (key: string, by = 1) => {
    stats[key] = (stats[key] ?? 0) + by;
  };
  const segments = makeSegments(d, anchor);
  const segmentIds = segments.map((s) => s.id);
  const names = new Set<string>();
  const features: UnleashFeature[] = [];
  // A few flags are parents; later flags may depend on one of them (one level: a parent never has one).
  const parents: UnleashFeature[] = [];
  for (let i = 0; i < options.flags; i++) {
    let name: string;
    do name = `${d.pick(AREAS)}.${d.pick(THINGS)}${d.chance(0.5) ? `-${d.int(2, 9)}` : ""}`;
    while (names.has(name));
    names.add(name);
    const type = d.weighted({ release: 50, experiment: 20, operational: 15, "kill-switch": 8, permission: 7 });
    const enabled = !d.chance(0.08);
    if (!enabled) count("flags.disabled");
    const kinds: Kind[] = [];
    const nStrategies = Number(d.weighted({ 1: 60, 2: 30, 3: 10 }));
    for (let k = 0; k < nStrategies; k++) {
      kinds.push(
        type === "kill-switch"
          ? "default"
          : d.weighted<Kind>({ default: 15, flexibleRollout: 55, userWithId: 18, remoteAddress: 12 }),
      );
    }
    const strategies = kinds.map((kind, sortOrder) => ({
      ...strategy(d, kind, name, anchor, segmentIds, stats),
      sortOrder,
    }));
    const feature: UnleashFeature = {
      name,
      description: `${type} flag ${name}`,
      type,
      project: "default",
      enabled,
      stale: false,
      impressionData: false,
      strategies,
      variants: [],
    };
    if ((type === "experiment" && d.chance(0.8)) || d.chance(0.15)) {
      feature.variants = variants(d, name, d.weighted({ default: 70, userId: 15, sessionId: 10, tenant: 5 }));
      count("flags.with_variants");
    }
    if (parents.length && !parents.includes(feature) && d.chance(0.1)) {
      const parent = d.pick(parents);
      const dep = d.weighted({ enabled: 60, disabled: 20, variants: 20 });
      if (dep === "variants" && parent.variants?.length) {
        feature.dependencies = [
          { feature: parent.name, enabled: true, variants: [(parent.variants[0] as Variant).name] },
        ];
      } else if (dep === "disabled") {
        feature.dependencies = [{ feature: parent.name, enabled: false }];
      } else {
        feature.dependencies = [{ feature: parent.name, enabled: true }];
      }
      count(`dependencies.${dep === "variants" && !parent.variants?.length ? "enabled" : dep}`);
    } else if (parents.length < 12 && d.chance(0.12)) {
      parents.push(feature);
    }
    features.push(feature);
  }
  count("flags", features.length);
  count("segments", segments.length);
  const contexts = makeContexts(d, options.contexts, anchor);
  count("contexts", contexts.length);
  count("contexts.anonymous", contexts.filter((c) => !c.userId).length);
  return {
    doc: { version: 2, features, segments },
    contexts,
    contextFields: CONTEXT_FIELDS,
    stats,
  };
}

/** Flags the Unleash server refuses (inverted REGEX), and those that depend on one: left out of the HTTP run. */
export function refusedByUnleash(doc: ClientFeatures): Map<string, string> {
  const refused = new Map<string, string>();
  const segmentBad = new Set(
    (doc.segments ?? [])
      .filter((s) => s.constraints.some((c) => c.operator === "REGEX" && c.inverted))
      .map((s) => s.id),
  );
  for (const f of doc.features) {
    const bad = (f.strategies ?? []).some(
      (s) =>
        (s.constraints ?? []).some((c) => c.operator === "REGEX" && c.inverted) ||
        (s.segments ?? []).some((id) => segmentBad.has(id)),
    );
    if (bad) refused.set(f.name, "inverted REGEX constraint (Unleash: 'REGEX operator cannot be inverted')");
  }
  for (const f of doc.features) {
    const parent = f.dependencies?.find((dep) => refused.has(dep.feature));
    if (parent && !refused.has(f.name)) refused.set(f.name, `depends on ${parent.feature}, which is left out`);
  }
  return refused;
}

/** The document without the given flags. */
export function without(doc: Workload["doc"], names: Set<string> | Map<string, unknown>): Workload["doc"] {
  return { ...doc, features: doc.features.filter((f) => !names.has(f.name)) };
}
