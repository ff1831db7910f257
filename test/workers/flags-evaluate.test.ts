import { describe, expect, it, vi } from "vitest";
import { type CompileOptions, compile, evaluate, evaluateAll } from "../../src/flags/evaluate.ts";
import { inRange, parseIpRange } from "../../src/flags/ip.ts";
import {
  type ClientFeatures,
  DISABLED_VARIANT,
  type EvaluationContext,
  type FlagRules,
  type Snapshot,
  type Strategy,
  type Variant,
} from "../../src/flags/model.ts";
import { murmur3, normalizedValue, VARIANT_SEED } from "../../src/flags/murmur.ts";
import { compileRe2 } from "../../src/flags/regex.ts";
import { flagRules } from "./flags-spec-files.ts";
import { applyDeltaEvents } from "./unleash-delta.ts";

const rules = flagRules;

const snapshot = (flags: FlagRules[], extra: Partial<Snapshot> = {}): Snapshot => ({
  version: 42,
  builtAt: "2026-01-01T00:00:00.000Z",
  flags,
  segments: [],
  overrides: {},
  ...extra,
});

const quiet: CompileOptions = { onError: () => {} };
const one = (flag: FlagRules, context: EvaluationContext = {}, extra: Partial<Snapshot> = {}, options = quiet) =>
  evaluate(compile(snapshot([flag], extra), options), flag.key, context);

const payloaded = (name: string, weight: number, type: string, value: string): Variant => ({
  name,
  weight,
  payload: { type, value },
});
const rollout = (percent: number, extra: Partial<Strategy> = {}): Strategy => ({
  name: "flexibleRollout",
  parameters: { rollout: String(percent), stickiness: "default", groupId: "g" },
  ...extra,
});

describe("evaluate: order and reasons", () => {
  it("answers an unknown flag with NOT_FOUND, version 0", () => {
    expect(evaluate(compile(snapshot([])), "nope", {})).toEqual({
      enabled: false,
      variant: DISABLED_VARIANT,
      value: false,
      reason: "NOT_FOUND",
      version: 0,
    });
  });

  it("serves a flag without strategies to everyone: DEFAULT, or SPLIT when weighted variants chose", () => {
    expect(one(rules("f"))).toMatchObject({ enabled: true, reason: "DEFAULT", value: true, variant: DISABLED_VARIANT });
    const split = one(
      rules("f", {
        variants: [
          { name: "a", weight: 1 },
          { name: "b", weight: 1 },
        ],
      }),
      { userId: "u" },
    );
    expect(split).toMatchObject({ enabled: true, reason: "SPLIT" });
    const single = one(rules("f", { variants: [{ name: "a", weight: 1 }] }), { userId: "u" });
    expect(single).toMatchObject({ enabled: true, reason: "DEFAULT", variant: { name: "a", enabled: true } });
  });

  it("is off with reason DEFAULT when no strategy matches; TARGETING_MATCH on a plain match", () => {
    const flag = rules("f", { strategies: [{ name: "userWithId", parameters: { userIds: "u1, u2" } }] });
    expect(one(flag, { userId: "u3" })).toMatchObject({ enabled: false, reason: "DEFAULT", value: false });
    expect(one(flag, { userId: "u2" })).toMatchObject({ enabled: true, reason: "TARGETING_MATCH", value: true });
  });

  it("says SPLIT when a rollout below 100% decided, TARGETING_MATCH at 100%", () => {
    const ruleSet = compile(
      snapshot([rules("half", { strategies: [rollout(50)] }), rules("all", { strategies: [rollout(100)] })]),
    );
    const results = Array.from({ length: 40 }, (_, i) => evaluate(ruleSet, "half", { userId: `user-${i}` }));
    expect(results.filter((r) => r.enabled).every((r) => r.reason === "SPLIT")).toBe(true);
    expect(results.filter((r) => !r.enabled).every((r) => r.reason === "DEFAULT")).toBe(true);
    expect(new Set(results.map((r) => r.enabled))).toEqual(new Set([true, false]));
    expect(evaluate(ruleSet, "all", { userId: "x" }).reason).toBe("TARGETING_MATCH");
  });

  it("says SPLIT when weights chose among 2+ variants, not when a variant override did", () => {
    const variants: Variant[] = [
      { ...payloaded("a", 1, "string", "A"), overrides: [{ contextName: "userId", values: ["vip"] }] },
      payloaded("b", 1, "string", "B"),
    ];
    const flag = rules("f", { strategies: [rollout(100)], variants });
    expect(one(flag, { userId: "someone" }).reason).toBe("SPLIT");
    expect(one(flag, { userId: "vip" })).toMatchObject({ reason: "TARGETING_MATCH", variant: { name: "a" } });
  });

  it("turns a flag off with its kill switch (DISABLED), serving the default value", () => {
    const flag = rules("f", { type: "string", defaultValue: "plain", enabled: false, version: 9 });
    expect(one(flag)).toEqual({
      enabled: false,
      variant: DISABLED_VARIANT,
      value: "plain",
      reason: "DISABLED",
      version: 9,
    });
  });

  it("is DISABLED outside its environments", () => {
    const flag = rules("f", { environments: ["prod", "staging"] });
    expect(one(flag, { environment: "dev" }).reason).toBe("DISABLED");
    expect(one(flag, {}).reason).toBe("DISABLED");
    expect(one(flag, { environment: "prod" })).toMatchObject({ enabled: true, reason: "DEFAULT" });
  });

  it("is SCHEDULED_INACTIVE outside [start, end), before the kill switch", () => {
    const schedule = { start: "2026-02-01T00:00:00Z", end: "2026-03-01T00:00:00Z" };
    const flag = rules("f", { schedule, enabled: false });
    expect(one(flag, { currentTime: "2026-01-31T23:59:59Z" }).reason).toBe("SCHEDULED_INACTIVE");
    expect(one(flag, { currentTime: "2026-03-01T00:00:00Z" }).reason).toBe("SCHEDULED_INACTIVE");
    expect(one(flag, { currentTime: "2026-02-01T00:00:00Z" }).reason).toBe("DISABLED");
    const open = rules("f", { schedule: { start: "2020-01-01T00:00:00Z", end: null } });
    expect(one(open)).toMatchObject({ enabled: true, reason: "DEFAULT" }); // now, no currentTime
  });

  it("is DISABLED when a dependency is unmet, judging the parent for the same user (overrides included)", () => {
    const parent = rules("parent", { strategies: [{ name: "userWithId", parameters: { userIds: "a" } }] });
    const child = rules("child", { dependencies: [{ feature: "parent" }] });
    const ruleSet = compile(snapshot([parent, child], { overrides: { parent: { b: { value: true } } } }));
    expect(evaluate(ruleSet, "child", { userId: "a" }).reason).toBe("DEFAULT");
    expect(evaluate(ruleSet, "child", { userId: "b" }).enabled).toBe(true);
    expect(evaluate(ruleSet, "child", { userId: "c" })).toMatchObject({ enabled: false, reason: "DISABLED" });
  });

  it("reports the flag's own version; the rule set has the snapshot's version and keys", () => {
    const ruleSet = compile(snapshot([rules("a", { version: 5 }), rules("b", { version: 8 })]));
    expect(ruleSet.version).toBe(42);
    expect(ruleSet.keys).toEqual(["a", "b"]);
    expect(evaluate(ruleSet, "a", {}).version).toBe(5);
    expect(evaluate(ruleSet, "b", {}).version).toBe(8);
  });

  it("evaluates every flag at once, whatever its key", () => {
    const ruleSet = compile(snapshot([rules("a"), rules("__proto__", { enabled: false })]));
    const all = evaluateAll(ruleSet, {});
    expect(Object.entries(all).map(([key, evaluation]) => [key, evaluation.reason])).toEqual([
      ["a", "DEFAULT"],
      ["__proto__", "DISABLED"],
    ]);
  });
});

describe("evaluate: per-user overrides win over everything", () => {
  const variants = [payloaded("blue", 1, "json", '{"color":"blue"}'), payloaded("red", 1, "json", '{"color":"red"}')];
  const strategyVariant = payloaded("green", 1, "json", '{"color":"green"}');
  const flag = rules("theme", {
    type: "json",
    defaultValue: { color: "grey" },
    enabled: false,
    schedule: { start: "2030-01-01T00:00:00Z" },
    variants,
    strategies: [{ name: "default", variants: [strategyVariant] }],
    version: 3,
  });
  const overrides = {
    theme: {
      ann: { variant: "red" },
      bob: { value: { color: "black" } },
      cat: { variant: "green", expiresAt: "2026-06-01T00:00:00Z" },
      dan: { value: { color: "gold" }, variant: "blue" },
    },
  };
  const ruleSet = compile(snapshot([flag], { overrides }));
  const at = (userId: string, currentTime = "2026-05-01T00:00:00Z") =>
    evaluate(ruleSet, "theme", { userId, currentTime });

  it("serves an override's variant with its payload, typed, even when the flag is off and out of schedule", () => {
    expect(at("ann")).toEqual({
      enabled: true,
      variant: { name: "red", enabled: true, payload: { type: "json", value: '{"color":"red"}' } },
      value: { color: "red" },
      reason: "OVERRIDE",
      version: 3,
    });
    expect(at("cat")).toMatchObject({ variant: { name: "green" }, value: { color: "green" }, reason: "OVERRIDE" });
  });

  it("serves an override's value, naming its variant (default 'override')", () => {
    expect(at("bob")).toMatchObject({ enabled: true, value: { color: "black" }, variant: { name: "override" } });
    expect(at("dan")).toMatchObject({ value: { color: "gold" }, variant: { name: "blue", payload: { type: "json" } } });
  });

  it("ignores an expired override and other users", () => {
    expect(at("cat", "2026-06-01T00:00:00Z").reason).toBe("SCHEDULED_INACTIVE");
    expect(at("eve")).toMatchObject({ enabled: false, value: { color: "grey" }, reason: "SCHEDULED_INACTIVE" });
  });

  it("turns a boolean flag on or off for one user", () => {
    const toggles = compile(
      snapshot([rules("b", { enabled: false }), rules("c")], {
        overrides: { b: { on: { value: true } }, c: { off: { value: false } } },
      }),
    );
    expect(evaluate(toggles, "b", { userId: "on" })).toMatchObject({
      enabled: true,
      value: true,
      reason: "OVERRIDE",
      variant: { name: "override", enabled: true },
    });
    expect(evaluate(toggles, "c", { userId: "off" })).toEqual({
      enabled: false,
      value: false,
      reason: "OVERRIDE",
      variant: DISABLED_VARIANT,
      version: 1,
    });
  });
});

describe("evaluate: values by type", () => {
  it("reads the served variant's payload as the flag's type, else the default", () => {
    const string = rules("s", { type: "string", defaultValue: "none", variants: [payloaded("v", 1, "string", "hi")] });
    expect(one(string).value).toBe("hi");
    const number = rules("n", { type: "number", defaultValue: 0, variants: [payloaded("v", 1, "number", "1.5")] });
    expect(one(number).value).toBe(1.5);
    const notNumber = rules("n", { type: "number", defaultValue: 7, variants: [payloaded("v", 1, "string", "x")] });
    expect(one(notNumber).value).toBe(7);
    const noVariant = rules("s", { type: "string", defaultValue: "none" });
    expect(one(noVariant)).toMatchObject({ enabled: true, value: "none" });
    const boolean = rules("b", { variants: [payloaded("v", 1, "string", "hi")] });
    expect(one(boolean).value).toBe(true);
  });

  it("parses a json payload once, at compile time, and freezes it", () => {
    const ruleSet = compile(
      snapshot([
        rules("j", { type: "json", defaultValue: null, variants: [payloaded("v", 1, "json", '{"a":[1,2]}')] }),
      ]),
    );
    const first = evaluate(ruleSet, "j", { userId: "1" });
    expect(first.value).toEqual({ a: [1, 2] });
    expect(evaluate(ruleSet, "j", { userId: "2" }).value).toBe(first.value);
    expect(Object.isFrozen(first.value) && Object.isFrozen(first)).toBe(true);
  });
});

describe("evaluate: strategies at the edge", () => {
  it("matches applicationHostname against the compile option only (the edge has no host name)", () => {
    const flag = rules("h", {
      strategies: [{ name: "applicationHostname", parameters: { hostNames: "api-1, Edge-EU" } }],
    });
    expect(one(flag).enabled).toBe(false);
    expect(one(flag, {}, {}, { ...quiet, hostname: "edge-eu" }).enabled).toBe(true);
    expect(one(flag, {}, {}, { ...quiet, hostname: "edge-us" }).enabled).toBe(false);
  });

  it("matches remoteAddress against IPv4 and IPv6 addresses and ranges", () => {
    const flag = rules("ip", {
      strategies: [{ name: "remoteAddress", parameters: { IPs: "10.1.0.0/16, 2001:db8::/32, ::1" } }],
    });
    expect(one(flag, { remoteAddress: "10.1.200.3" }).enabled).toBe(true);
    expect(one(flag, { remoteAddress: "10.2.0.1" }).enabled).toBe(false);
    expect(one(flag, { remoteAddress: "2001:db8:ffff::7" }).enabled).toBe(true);
    expect(one(flag, { remoteAddress: "0:0:0:0:0:0:0:1" }).enabled).toBe(true);
    expect(one(flag, { remoteAddress: "2001:db9::1" }).enabled).toBe(false);
  });

  it("skips disabled and unknown strategies; with every strategy disabled nobody matches", () => {
    const some = rules("d", {
      strategies: [{ name: "default", disabled: true }, { name: "custom" }, { name: "default" }],
    });
    expect(one(some)).toMatchObject({ enabled: true, reason: "TARGETING_MATCH" });
    const none = rules("d", { strategies: [{ name: "default", disabled: true }] });
    expect(one(none)).toMatchObject({ enabled: false, reason: "DEFAULT" });
  });

  it("reads DATE_* against now when the context has no currentTime", () => {
    const flag = rules("t", {
      strategies: [
        {
          name: "default",
          constraints: [{ contextName: "currentTime", operator: "DATE_AFTER", value: "2020-01-01T00:00:00Z" }],
        },
      ],
    });
    expect(one(flag).enabled).toBe(true);
    expect(one(flag, { currentTime: "2019-12-31T00:00:00Z" }).enabled).toBe(false);
  });

  it("ANDs a strategy's constraints with its segments' constraints", () => {
    const segments = [{ id: 1, constraints: [{ contextName: "plan", operator: "IN" as const, values: ["pro"] }] }];
    const flag = rules("s", {
      strategies: [
        { name: "default", segments: [1], constraints: [{ contextName: "userId", operator: "IN", values: ["u"] }] },
      ],
    });
    expect(one(flag, { userId: "u", properties: { plan: "pro" } }, { segments }).enabled).toBe(true);
    expect(one(flag, { userId: "u", properties: { plan: "free" } }, { segments }).enabled).toBe(false);
  });
});

describe("evaluate never throws", () => {
  const good = rules("good");
  const corrupt: FlagRules[] = [
    rules("bad-regex", {
      version: 3,
      strategies: [{ name: "default", constraints: [{ contextName: "userId", operator: "REGEX", value: "(" }] }],
    }),
    rules("bad-strategies", { strategies: "nope" as never }),
    rules("bad-values", {
      strategies: [{ name: "default", constraints: [{ contextName: "a", operator: "IN", values: "x" as never }] }],
    }),
    rules("bad-segment", { strategies: [{ name: "default", segments: [7] }] }),
    rules("bad-payload", { type: "json", defaultValue: { safe: true }, variants: [payloaded("v", 1, "json", "{")] }),
    rules("bad-schedule", { schedule: { start: "someday" } }),
  ];
  const segments = [{ id: 7, constraints: [{ contextName: "v", operator: "SEMVER_EQ" as const, value: "one" }] }];

  it("serves a flag whose rules do not compile its default with ERROR, reported once; the others are fine", () => {
    const onError = vi.fn();
    const ruleSet = compile(snapshot([good, ...corrupt], { segments }), { onError });
    for (let i = 0; i < 3; i++) {
      expect(evaluate(ruleSet, "good", {})).toMatchObject({ enabled: true, reason: "DEFAULT" });
      for (const { key } of corrupt)
        expect(evaluate(ruleSet, key, { userId: "u" })).toMatchObject({ enabled: false, reason: "ERROR" });
    }
    expect(evaluate(ruleSet, "bad-payload", {})).toMatchObject({ value: { safe: true }, version: 1 });
    expect(onError.mock.calls.map(([key]) => key)).toEqual(corrupt.map((flag) => flag.key));
    expect(onError).toHaveBeenCalledWith(
      "bad-regex",
      3,
      expect.stringMatching(/^strategies\[0\]\.constraints\[0\]\.value /),
    );
    expect(onError).toHaveBeenCalledWith(
      "bad-segment",
      1,
      expect.stringMatching(/^strategies\[0\]\.segments\[0\] is segment 7/),
    );
    expect(onError).toHaveBeenCalledWith("bad-payload", 1, expect.stringMatching(/^variants\[0\]\.payload\.value /));
  });

  it("turns a failure while evaluating into ERROR for that flag, reported once", () => {
    const onError = vi.fn();
    const ruleSet = compile(
      snapshot([good, rules("users", { strategies: [{ name: "userWithId", parameters: { userIds: "a" } }] })]),
      {
        onError,
      },
    );
    const hostile = Object.defineProperty({}, "userId", {
      get() {
        throw new Error("boom");
      },
    }) as EvaluationContext;
    expect(evaluate(ruleSet, "users", hostile)).toMatchObject({ enabled: false, reason: "ERROR", version: 1 });
    expect(evaluate(ruleSet, "users", hostile).reason).toBe("ERROR");
    expect(evaluate(ruleSet, "good", hostile).reason).toBe("DEFAULT");
    expect(onError).toHaveBeenCalledOnce();
    expect(onError).toHaveBeenCalledWith("users", 1, "boom");
  });

  it("survives a missing context or rule set", () => {
    const ruleSet = compile(snapshot([good]));
    expect(evaluate(ruleSet, "good", undefined as never).enabled).toBe(true);
    expect(evaluate(undefined as never, "good", {})).toMatchObject({ enabled: false, reason: "ERROR", version: 0 });
    expect(evaluateAll(undefined as never, {})).toEqual({});
  });

  it("logs a broken flag once per flag and version by default", () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const broken = rules("logged-once", { version: 11, strategies: "nope" as never });
    compile(snapshot([broken]));
    compile(snapshot([broken], { version: 43 }));
    compile(snapshot([{ ...broken, version: 12 }], { version: 44 }));
    const lines = errors.mock.calls.map(([line]) => JSON.parse(String(line)));
    errors.mockRestore();
    expect(lines.map((line) => [line.flag, line.flag_version])).toEqual([
      ["logged-once", 11],
      ["logged-once", 12],
    ]);
  });
});

describe("building blocks", () => {
  it("hashes like the Unleash reference client (murmurhash3js), non-ASCII included", () => {
    expect(murmur3("AB12A:123")).toBe(1954468150);
    expect(murmur3("123", 0, "AB12A:")).toBe(1954468150);
    expect(murmur3("Feature.Variants.B:0", VARIANT_SEED)).toBe(3067984052);
    expect(murmur3("AB12A:héllo")).toBe(1572067986);
    expect(murmur3("AB12A:😊")).toBe(3184333509);
    expect(normalizedValue("123", "AB12A", 100)).toBe(51);
  });

  it("translates RE2 syntax: scoped and leading flags, POSIX classes, quoting", () => {
    const scoped = compileRe2("a(?i)b");
    expect([scoped.test("aB"), scoped.test("AB")]).toEqual([true, false]);
    expect(compileRe2("(?i:x)y").test("Xy")).toBe(true);
    expect(compileRe2("^[[:digit:][:upper:]]+$").test("A1B2")).toBe(true);
    expect(compileRe2("^\\Qa.b\\E$").test("axb")).toBe(false);
    expect(compileRe2("^\\s$").test("\u00a0")).toBe(false); // RE2's \s is ASCII
    expect(() => compileRe2("(?<=a)b")).toThrow(/lookaround/);
    expect(() => compileRe2("a{1001}")).toThrow(/1000/);
  });

  it("parses IPv4 and IPv6 ranges", () => {
    const range = parseIpRange("::ffff:10.0.0.0/104")!;
    expect(inRange(range, parseIpRange("::ffff:10.9.8.7")!)).toBe(true);
    expect(parseIpRange("1:2:3:4:5:6:7:8:9")).toBeUndefined();
    expect(parseIpRange("10.0.0.0/33")).toBeUndefined();
  });

  it("applies delta events purely: updates, removals, hydration; the version is the last event id", () => {
    const before: ClientFeatures = {
      version: 1,
      features: [
        { name: "a", enabled: true },
        { name: "b", enabled: true },
      ],
      segments: [{ id: 1, constraints: [] }],
    };
    const after = applyDeltaEvents(before, [
      { eventId: 2, type: "feature-updated", feature: { name: "a", enabled: false } },
      { eventId: 3, type: "feature-removed", featureName: "b", project: "default" },
      { eventId: 4, type: "segment-removed", segmentId: 1 },
      { eventId: 5, type: "feature-updated", feature: { name: "c", enabled: true } },
    ]);
    expect(after).toEqual({
      version: 5,
      features: [
        { name: "a", enabled: false },
        { name: "c", enabled: true },
      ],
      segments: [],
    });
    expect(before.features).toHaveLength(2);
    const hydrated = applyDeltaEvents(after, [
      { eventId: 9, type: "hydration", features: [{ name: "z", enabled: true }] },
    ]);
    expect(hydrated).toEqual({ version: 9, features: [{ name: "z", enabled: true }], segments: [] });
  });
});
