import { describe, expect, it } from "vitest";
import type { Constraint, FlagRules, Strategy, Variant } from "../../src/flags/model.ts";
import {
  type FlagInput,
  type ValidationScope,
  validateFlag,
  validateOverride,
  validateSegment,
} from "../../src/flags/validate.ts";
import { clientFeaturesOf, flagRules, snapshotOf, specFiles } from "./flags-spec-files.ts";

const flag = (patch: Partial<FlagInput> = {}): FlagInput => flagRules("checkout", patch);

const stored = new Map<string, string[]>([
  ["parent", []],
  ["uses-checkout", ["checkout"]],
  ["middle", ["uses-checkout"]],
]);
const scope: ValidationScope = { segmentIds: new Set([1, 2]), dependenciesOf: (key) => stored.get(key) };

const withConstraint = (constraint: Constraint): Partial<FlagInput> => ({
  strategies: [
    {
      name: "default",
      constraints: [{ contextName: "userId", operator: "IN", values: ["a"] }, constraint],
    },
  ],
});
const variant = (name: string, weight: number, extra: Partial<Variant> = {}): Variant => ({ name, weight, ...extra });
const fields = (input: FlagInput) => validateFlag(input, scope).map((error) => error.field);

describe("validateFlag refuses, naming the field", () => {
  it.each<[string, Partial<FlagInput>, string, RegExp]>([
    [
      "a regex that does not compile",
      withConstraint({ contextName: "email", operator: "REGEX", value: "(unclosed" }),
      "strategies[0].constraints[1].value",
      /regular expression/,
    ],
    [
      "a regex RE2 refuses (lookahead)",
      withConstraint({ contextName: "email", operator: "REGEX", value: "^(?=a)b$" }),
      "strategies[0].constraints[1].value",
      /lookaround/,
    ],
    [
      "a bad semver",
      withConstraint({ contextName: "version", operator: "SEMVER_GT", value: "1.2" }),
      "strategies[0].constraints[1].value",
      /semantic version/,
    ],
    [
      "a NUM_* value that is not a number",
      withConstraint({ contextName: "age", operator: "NUM_GTE", value: "eighteen" }),
      "strategies[0].constraints[1].value",
      /not a number/,
    ],
    [
      "a DATE_* value that is not an ISO date",
      withConstraint({ contextName: "currentTime", operator: "DATE_AFTER", value: "next tuesday" }),
      "strategies[0].constraints[1].value",
      /ISO 8601/,
    ],
    [
      "a single-value operator without its value",
      withConstraint({ contextName: "age", operator: "NUM_EQ", values: ["3"] }),
      "strategies[0].constraints[1].value",
      /required/,
    ],
    [
      "an unknown operator",
      withConstraint({ contextName: "age", operator: "ROUGHLY" as never, value: "3" }),
      "strategies[0].constraints[1].operator",
      /must be one of/,
    ],
    [
      "a bad CIDR among IN_CIDR values",
      withConstraint({
        contextName: "remoteAddress",
        operator: "IN_CIDR" as never,
        values: ["10.0.0.0/8", "::1", "10.0.0.0/33"],
      }),
      "strategies[0].constraints[1].values[2]",
      /CIDR/,
    ],
    [
      "a bad IP in the remoteAddress IPs parameter",
      { strategies: [{ name: "remoteAddress", parameters: { IPs: "10.0.0.1, 300.1.1.1, 2001:db8::/32" } }] },
      "strategies[0].parameters.IPs",
      /"300\.1\.1\.1"/,
    ],
    ["variant weights that are all 0", { variants: [variant("a", 0), variant("b", 0)] }, "variants", /above 0/],
    ["a negative weight", { variants: [variant("a", 1), variant("b", -1)] }, "variants[1].weight", /at least 0/],
    ["a fractional weight", { variants: [variant("a", 1.5)] }, "variants[0].weight", /whole number/],
    [
      "fixed weights above 1000",
      {
        variants: [variant("a", 700, { weightType: "fix" }), variant("b", 400, { weightType: "fix" }), variant("c", 1)],
      },
      "variants",
      /1100/,
    ],
    [
      "only fixed weights not adding up to 1000",
      { variants: [variant("a", 500, { weightType: "fix" }), variant("b", 400, { weightType: "fix" })] },
      "variants",
      /must add up to 1000/,
    ],
    [
      "strategy variants whose weights do not add up",
      { strategies: [{ name: "default", variants: [variant("a", 0)] }] },
      "strategies[0].variants",
      /above 0/,
    ],
    [
      "a rollout above 100",
      { strategies: [{ name: "flexibleRollout", parameters: { rollout: "101", stickiness: "default" } }] },
      "strategies[0].parameters.rollout",
      /0 to 100/,
    ],
    [
      "a percentage below 0",
      { strategies: [{ name: "gradualRolloutUserId", parameters: { percentage: -1 } }] },
      "strategies[0].parameters.percentage",
      /0 to 100/,
    ],
    [
      "a missing rollout",
      { strategies: [{ name: "flexibleRollout", parameters: {} }] },
      "strategies[0].parameters.rollout",
      /0 to 100/,
    ],
    ["an unknown strategy", { strategies: [{ name: "defualt" }] }, "strategies[0].name", /must be one of/],
    [
      "an unknown segment",
      {
        strategies: [
          { name: "default", segments: [1] },
          { name: "default", segments: [404] },
        ],
      },
      "strategies[1].segments[0]",
      /404/,
    ],
    [
      "a dependency on itself",
      { dependencies: [{ feature: "checkout" }] },
      "dependencies[0].feature",
      /the flag itself/,
    ],
    [
      "a direct dependency cycle",
      { dependencies: [{ feature: "parent" }, { feature: "uses-checkout" }] },
      "dependencies[1].feature",
      /checkout → uses-checkout → checkout/,
    ],
    [
      "a transitive dependency cycle",
      { dependencies: [{ feature: "middle" }] },
      "dependencies[0].feature",
      /checkout → middle → uses-checkout → checkout/,
    ],
    [
      "a json payload that does not parse",
      { variants: [variant("a", 1, { payload: { type: "json", value: "{nope" } })] },
      "variants[0].payload.value",
      /JSON/,
    ],
    [
      "a number payload that is not a number",
      { variants: [variant("a", 1, { payload: { type: "number", value: "1,5" } })] },
      "variants[0].payload.value",
      /not a number/,
    ],
    [
      "an unknown payload type",
      { variants: [variant("a", 1, { payload: { type: "yaml", value: "a: 1" } })] },
      "variants[0].payload.type",
      /must be one of/,
    ],
    [
      "a payload a number flag cannot serve",
      { type: "number", defaultValue: 0, variants: [variant("a", 1, { payload: { type: "string", value: "ten" } })] },
      "variants[0].payload.value",
      /flag's type/,
    ],
    [
      "two variants with one name",
      { variants: [variant("a", 1), variant("a", 1)] },
      "variants[1].name",
      /another variant/,
    ],
    ["a string flag's non-string default", { type: "string", defaultValue: 3 }, "defaultValue", /string/],
    ["a number flag's non-number default", { type: "number", defaultValue: "3" }, "defaultValue", /number/],
    ["a boolean flag's number default", { type: "boolean", defaultValue: 12345 }, "defaultValue", /boolean/],
    ["a boolean flag's string default", { type: "boolean", defaultValue: "true" }, "defaultValue", /boolean/],
    ["a boolean flag's null default", { type: "boolean", defaultValue: null }, "defaultValue", /boolean/],
    ["a json flag's missing default", { type: "json", defaultValue: undefined as never }, "defaultValue", /required/],
    [
      "a schedule starting after it ends",
      { schedule: { start: "2026-03-01T00:00:00Z", end: "2026-02-01T00:00:00Z" } },
      "schedule.end",
      /after schedule.start/,
    ],
    [
      "a schedule time that is not ISO 8601",
      { schedule: { start: "March 1st", end: null } },
      "schedule.start",
      /ISO 8601/,
    ],
  ])("%s", (_what, patch, field, message) => {
    const errors = validateFlag(flag(patch), scope);
    expect(errors).toEqual([{ field, message: expect.stringMatching(message) }]);
  });

  it("reports every field at fault at once", () => {
    const strategy: Strategy = {
      name: "flexibleRollout",
      parameters: { rollout: 200 },
      constraints: [{ contextName: "v", operator: "SEMVER_EQ", value: "x" }],
      segments: [9],
    };
    expect(fields(flag({ type: "string", defaultValue: null, strategies: [strategy] }))).toEqual([
      "defaultValue",
      "strategies[0].parameters.rollout",
      "strategies[0].constraints[0].value",
      "strategies[0].segments[0]",
    ]);
  });
});

describe("validateFlag accepts", () => {
  it("a flag using every strategy, operator and weight rule correctly", () => {
    const constraints: Constraint[] = [
      { contextName: "environment", operator: "IN", values: [] },
      { contextName: "country", operator: "NOT_IN", values: ["NO"], inverted: true },
      { contextName: "email", operator: "STR_ENDS_WITH", values: ["@Example.com"], caseInsensitive: true },
      { contextName: "email", operator: "STR_CONTAINS", values: ["x"] },
      { contextName: "email", operator: "STR_STARTS_WITH", values: ["y"] },
      { contextName: "age", operator: "NUM_GT", value: "17.5" },
      { contextName: "currentTime", operator: "DATE_BEFORE", value: "2030-01-01T00:00:00.000+02:00" },
      { contextName: "version", operator: "SEMVER_LT", value: "v2.0.0-rc.1" },
      { contextName: "userId", operator: "REGEX", value: "^(?i)[[:alpha:]]+\\d{2}$" },
      { contextName: "remoteAddress", operator: "IN_CIDR" as never, values: ["10.0.0.0/8", "2001:db8::/32"] },
    ];
    const input = flag({
      type: "json",
      defaultValue: { theme: "light" },
      schedule: { start: "2026-01-01T00:00:00Z", end: null },
      strategies: [
        { name: "default", constraints, segments: [1, 2] },
        { name: "userWithId", parameters: { userIds: "1, 2" } },
        { name: "gradualRolloutUserId", parameters: { percentage: "25", groupId: "g" } },
        { name: "gradualRolloutSessionId", parameters: { percentage: 0 } },
        { name: "gradualRolloutRandom", parameters: { percentage: "100" } },
        { name: "remoteAddress", parameters: { IPs: "127.0.0.1, 192.168.0.0/16, ::1" } },
        { name: "applicationHostname", parameters: { hostNames: "edge-1" } },
        {
          name: "flexibleRollout",
          parameters: { rollout: "50", stickiness: "tenant", groupId: "g" },
          variants: [variant("s1", 300, { weightType: "fix" }), variant("s2", 1)],
        },
      ],
      variants: [
        variant("dark", 600, { weightType: "fix", payload: { type: "json", value: '{"theme":"dark"}' } }),
        variant("plain", 400, { weightType: "fix", payload: { type: "string", value: "plain" } }),
      ],
      dependencies: [{ feature: "parent", variants: ["on"] }, { feature: "not-yet-created" }],
    });
    expect(validateFlag(input, scope)).toEqual([]);
  });
});

describe("validateOverride", () => {
  const rules: Pick<FlagRules, "type" | "variants" | "strategies"> = {
    type: "string",
    variants: [variant("blue", 1)],
    strategies: [{ name: "default", variants: [variant("green", 1)] }],
  };

  it("accepts a value of the flag's type, a variant of the flag (or of a strategy), an expiry", () => {
    expect(validateOverride(rules, { value: "x", expiresAt: "2030-01-01T00:00:00Z" })).toEqual([]);
    expect(validateOverride(rules, { variant: "blue" })).toEqual([]);
    expect(validateOverride(rules, { variant: "green", value: "g" })).toEqual([]);
  });

  it("refuses a variant the flag does not have, naming the field", () => {
    expect(validateOverride(rules, { variant: "red" })).toEqual([
      { field: "variant", message: "must be one of blue, green" },
    ]);
  });

  it("refuses a value not of the flag's type, an unreadable expiry, and an empty override", () => {
    expect(validateOverride(rules, { value: 3, expiresAt: "soon" }).map((e) => e.field)).toEqual([
      "value",
      "expiresAt",
    ]);
    expect(validateOverride({ ...rules, type: "boolean" }, { value: "yes" }).map((e) => e.field)).toEqual(["value"]);
    expect(validateOverride(rules, {}).map((e) => e.field)).toEqual(["value"]);
  });
});

describe("validateSegment", () => {
  it("names the constraint at fault", () => {
    expect(validateSegment({ constraints: [{ contextName: "v", operator: "SEMVER_EQ", value: "1" }] })).toEqual([
      { field: "constraints[0].value", message: expect.stringMatching(/semantic version/) },
    ]);
  });
});

// The specification's own invalid inputs: each tests that SDKs tolerate them; we refuse them at write time.
const refusedSpecFeatures: Record<string, Record<string, string>> = {
  "06-remote-address-strategy.json": { "Feature.remoteAddress.C": "strategies[0].parameters.IPs" },
  "13-constraint-operators.json": { "F7.invalid-operator": "strategies[0].constraints[0].operator" },
  "15-global-constraints.json": { "F9.withMissingSegment": "strategies[0].segments[0]" },
  "17-dependent-features.json": {
    "parent.with.cycle": "dependencies[0].feature",
    "child.with.cycle": "dependencies[0].feature",
  },
  "21-regex-constraint-operators.json": {
    "invalid-regex-defaults-to-false": "strategies[0].constraints[0].value",
    "R90.reject_lookahead": "strategies[0].constraints[0].value",
    "R91.reject_backreference": "strategies[0].constraints[0].value",
  },
  "22-cidr-constraint-operators.json": {
    "CIDR.mixed.values": "strategies[0].constraints[0].values[0]",
    "CIDR.invalid.only": "strategies[0].constraints[0].values[0]",
    "CIDR.ipv6.mixed.values": "strategies[0].constraints[0].values[0]",
  },
};

describe("every feature of the Unleash client specification", () => {
  for (const [file, spec] of Object.entries(specFiles)) {
    it(`${file} · validates, but for the spec's deliberately invalid features`, () => {
      const features = clientFeaturesOf(spec);
      const specScope: ValidationScope = {
        segmentIds: new Set((features.segments ?? []).map((segment) => segment.id)),
        dependenciesOf: (key) => features.features.find((f) => f.name === key)?.dependencies?.map((d) => d.feature),
      };
      const refused: Record<string, string> = {};
      for (const rules of snapshotOf(spec).flags) {
        const errors = validateFlag(rules, specScope);
        if (errors.length > 0) refused[rules.key] = errors.map((error) => error.field).join(", ");
      }
      expect(refused).toEqual(refusedSpecFeatures[file] ?? {});
    });
  }
});
