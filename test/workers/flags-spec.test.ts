// Every file of the official Unleash client specification (@unleash/client-specification), run against our engine:
// `tests` compare `enabled`, `variantTests` the variant (with the flag's own state as feature_enabled).
import { describe, expect, it } from "vitest";
import { compile, evaluate } from "../../src/flags/evaluate.ts";
import { snapshotOf, specFiles, specIndex } from "./flags-spec-files.ts";

describe("Unleash client specification", () => {
  it("covers every file the specification's index lists", () => {
    expect(Object.keys(specFiles)).toEqual(specIndex);
  });

  for (const [file, spec] of Object.entries(specFiles)) {
    describe(file, () => {
      const errors: string[] = [];
      const ruleSet = compile(snapshotOf(spec), {
        onError: (key, _version, message) => errors.push(`${key}: ${message}`),
      });

      for (const test of spec.tests ?? []) {
        it(`${file} · ${test.description}`, () => {
          expect(evaluate(ruleSet, test.toggleName, test.context).enabled).toBe(test.expectedResult);
        });
      }

      for (const test of spec.variantTests ?? []) {
        it(`${file} · variant · ${test.description}`, () => {
          const evaluation = evaluate(ruleSet, test.toggleName, test.context);
          const { name, payload, enabled } = evaluation.variant;
          expect({ name, payload, enabled, feature_enabled: evaluation.enabled }).toEqual(test.expectedResult);
        });
      }

      // Only the regex file carries rules that cannot compile (deliberately invalid patterns).
      it(`${file} · compiles every feature except the deliberately invalid regexes`, () => {
        const expected =
          file === "21-regex-constraint-operators.json"
            ? ["invalid-regex-defaults-to-false", "R90.reject_lookahead", "R91.reject_backreference"]
            : [];
        expect(errors.map((error) => error.split(":")[0])).toEqual(expected);
      });
    });
  }
});
