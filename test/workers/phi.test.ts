import { describe, expect, it } from "vitest";
import { metricEventProblem } from "../../src/metrics/catalog.ts";
import { detectPhi, type PhiType, phiMetricEvents, redactPhi, screenForCloud } from "../../src/safety/phi.ts";

/** The flagged substrings of a text, by type, in order. */
const found = (text: string) => detectPhi(text).map((s) => [s.type, text.slice(s.start, s.end)]);
const only = (type: PhiType, text: string) => found(text).flatMap(([t, value]) => (t === type ? [value] : []));

// Clinical questions without PHI: they must reach the model untouched.
const clean = [
  "What is the max dose of metformin 500 mg twice daily for a 70 kg adult?",
  "Sepsis bundle within 1 hour",
  "ICD-10 code E11.9",
  "Dr. guidelines on anticoagulation",
  "Patient Type 2 diabetes with HbA1c 7.5% since 2020-01-01",
  "patient Metformin",
  "Patient Safety Indicators and Patient Health Questionnaire PHQ-9",
  "The patient, a 45-year-old man, has had chest pain since 02/14/2021.",
  "Patient: 67 yo F with CHF, BP 120/80, INR 2.0-3.0, eGFR 45 mL/min/1.73 m2",
  "Doses of 250 500 1000 mg; titrate 1.5-2.0-2.5 mg; 1,000,000 units of penicillin",
  "MS Contin 15 mg every 12 hours, or St. John's wort?",
  "Wells score 4 and CHA2DS2-VASc 3 at 10:30; call 911 if worse",
  "Reference: N Engl J Med 2019;380:1234-1245. doi:10.1056/NEJMoa1812389, PMID 31234567",
  "What is the brand name Glucophage used for?",
  "Does pt Heart Failure protocol apply in 2024?",
  "Invalid SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000",
];

describe("detectPhi", () => {
  it.each(clean)("passes a clinical question without PHI: %s", (text) => {
    expect(found(text)).toEqual([]);
    expect(screenForCloud(text, "block")).toEqual({ allowed: true, text, counts: {} });
  });

  it("finds names after clinical cues: first and last name, apostrophes, hyphens, initials", () => {
    expect(only("name", "patient John Smith has a cough")).toEqual(["John Smith"]);
    expect(only("name", "Pt: Jane Doe was seen")).toEqual(["Jane Doe"]);
    expect(only("name", "my patient, Maria Garcia, has CKD")).toEqual(["Maria Garcia"]);
    expect(only("name", "Patient name: Sean O'Brien")).toEqual(["Sean O'Brien"]);
    expect(only("name", "name: John A. Smith-Jones")).toEqual(["John A. Smith-Jones"]);
    expect(only("name", "a patient named Ann McDonald")).toEqual(["Ann McDonald"]);
    expect(only("name", "patient José García-López")).toEqual(["José García-López"]);
  });

  it("finds a surname after a title, case-sensitively (MS is a disease, Ms a title)", () => {
    expect(only("name", "Mr. O'Brien and Mrs Smith-Jones")).toEqual(["O'Brien", "Smith-Jones"]);
    expect(only("name", "Ms. Lee asked Dr. Patel")).toEqual(["Lee", "Patel"]);
    expect(found("MS relapse")).toEqual([]);
  });

  it("flags a person's name in an eponym after a title, keeping the possessive", () => {
    // A title always introduces a person; eponymous criteria are written without one ("Wells criteria").
    expect(redactPhi("Dr. Smith's criteria").text).toBe("Dr. [NAME_1]'s criteria");
  });

  it("stops a name at a common clinical word", () => {
    expect(only("name", "patient John Smith Presents with fever")).toEqual(["John Smith"]);
  });

  it("finds later mentions of a cued name without the cue", () => {
    expect(redactPhi("Patient John Smith: is John Smith on insulin? Smith's labs are normal.").text).toBe(
      "Patient [NAME_1]: is [NAME_1] on insulin? [NAME_2]'s labs are normal.",
    );
  });

  it("finds dates of birth after a cue, in common formats, but not bare dates", () => {
    const text =
      "DOB 1980-02-14; D.O.B.: 02/14/1980; date of birth 14.02.1980; born on 14 Feb 1980; birth date: February 14, 1980; seen 2024-03-01";
    expect(only("dob", text)).toEqual(["1980-02-14", "02/14/1980", "14.02.1980", "14 Feb 1980", "February 14, 1980"]);
  });

  it("finds medical record numbers after a cue", () => {
    const text = "MRN 12345678; medical record number: A1234567; MR# 7654321; patient ID 99887766";
    expect(only("mrn", text)).toEqual(["12345678", "A1234567", "7654321", "99887766"]);
    expect(found("MRN lookup is slow")).toEqual([]);
  });

  it("finds SSNs: dashed when the area is valid, any nine digits after a cue", () => {
    expect(only("ssn", "SSN 123456789, 123-45-6789, social security number: 987-65-4321")).toEqual([
      "123456789",
      "123-45-6789",
      "987-65-4321",
    ]);
  });

  it("finds North American and international phone numbers", () => {
    const text =
      "Call +1 (555) 123-4567, 555-123-4567, 555.123.4567, (555)123-4567, 1-800-555-1234, +44 20 7946 0958, +15551234567 or tel 555 123 4567";
    expect(only("phone", text)).toEqual([
      "+1 (555) 123-4567",
      "555-123-4567",
      "555.123.4567",
      "(555)123-4567",
      "1-800-555-1234",
      "+44 20 7946 0958",
      "+15551234567",
      "555 123 4567",
    ]);
  });

  it("finds emails", () => {
    expect(found("write to j.smith+ckd@example.co.uk today")).toEqual([["email", "j.smith+ckd@example.co.uk"]]);
  });

  it("finds street addresses with unit, city, state and ZIP", () => {
    expect(found("lives at 123 Main St, Apt 4B, Springfield, IL 62704 now")).toEqual([
      ["address", "123 Main St, Apt 4B, Springfield, IL 62704"],
    ]);
    expect(found("1600 Pennsylvania Avenue NW, Washington, DC 20500")).toEqual([
      ["address", "1600 Pennsylvania Avenue NW, Washington, DC 20500"],
    ]);
    expect(found("at 45 Oak Dr and 350 5th Ave")).toEqual([
      ["address", "45 Oak Dr"],
      ["address", "350 5th Ave"],
    ]);
  });

  it("scans long text without catastrophic backtracking", () => {
    // Workers freeze clocks during synchronous code: a backtracking pattern shows as a hung suite, not a figure.
    expect(detectPhi("a".repeat(100_000))).toEqual([]);
    expect(detectPhi("1 ".repeat(50_000))).toEqual([]);
    expect(detectPhi("Patient John Smith ".repeat(5_000))).toHaveLength(5_000);
  });

  it("returns sorted, non-overlapping spans; a cued MRN wins over the phone shape of its digits", () => {
    const text = "MRN 5551234567, patient Jane Doe, jane@example.org";
    const spans = detectPhi(text);
    expect(spans.map((s) => s.type)).toEqual(["mrn", "name", "email"]);
    for (const [i, span] of spans.entries()) {
      expect(span.end).toBeGreaterThan(span.start);
      if (i > 0) expect(span.start).toBeGreaterThanOrEqual((spans[i - 1] as (typeof spans)[number]).end);
    }
  });
});

describe("redactPhi", () => {
  const text =
    "Patient John Smith (DOB 02/14/1980, MRN 12345678) and his wife Mrs. Smith: call 555-123-4567 or 555-987-6543, or email john@example.com.";

  it("replaces each span with a typed placeholder numbered per type, and counts them", () => {
    const result = redactPhi(text);
    expect(result.text).toBe(
      "Patient [NAME_1] (DOB [DOB_1], MRN [MRN_1]) and his wife Mrs. [NAME_2]: call [PHONE_1] or [PHONE_2], or email [EMAIL_1].",
    );
    expect(result.counts).toEqual({ name: 2, dob: 1, mrn: 1, phone: 2, email: 1 });
    expect(result.spans).toHaveLength(7);
  });

  it("gives the same value the same number, ignoring case and spacing", () => {
    expect(redactPhi("pt: Jane Doe. Call 555-123-4567. Again: 555-123-4567. name: jane doe?").text).toBe(
      "pt: [NAME_1]. Call [PHONE_1]. Again: [PHONE_1]. name: jane doe?",
    );
    expect(redactPhi("Mr. Lee, Mr.  Lee and Ms. Kim").text).toBe("Mr. [NAME_1], Mr.  [NAME_1] and Ms. [NAME_2]");
  });

  it("uses the spans it is given", () => {
    expect(redactPhi("abc def", [{ type: "name", start: 4, end: 7 }])).toEqual({
      text: "abc [NAME_1]",
      spans: [{ type: "name", start: 4, end: 7 }],
      counts: { name: 1 },
    });
  });
});

describe("screenForCloud", () => {
  const text = "Patient Jane Doe, SSN 123-45-6789: is metformin safe?";

  it("off: leaves the text untouched and counts nothing", () => {
    expect(screenForCloud(text, "off")).toEqual({ allowed: true, text, counts: {} });
  });

  it("redact: allows the text with placeholders", () => {
    expect(screenForCloud(text, "redact")).toEqual({
      allowed: true,
      text: "Patient [NAME_1], SSN [SSN_1]: is metformin safe?",
      counts: { name: 1, ssn: 1 },
    });
  });

  it("block: refuses text with PHI (and still returns only the redacted text), allows text without", () => {
    const blocked = screenForCloud(text, "block");
    expect(blocked.allowed).toBe(false);
    expect(blocked.text).not.toContain("Jane");
    expect(blocked.counts).toEqual({ name: 1, ssn: 1 });
    expect(screenForCloud("Is metformin safe in CKD stage 3?", "block").allowed).toBe(true);
  });
});

describe("phiMetricEvents", () => {
  it("emits one catalogued phi_detections_total increment per type found", () => {
    const events = phiMetricEvents({ name: 2, ssn: 1, email: 0 }, "redact");
    expect(events).toEqual([
      { name: "phi_detections_total", labels: { type: "name", mode: "redact" }, value: 2 },
      { name: "phi_detections_total", labels: { type: "ssn", mode: "redact" }, value: 1 },
    ]);
    for (const event of events) expect(metricEventProblem(event)).toBeUndefined();
    expect(phiMetricEvents({ phone: 1 }, "block")).toEqual([
      { name: "phi_detections_total", labels: { type: "phone", mode: "block" }, value: 1 },
    ]);
  });

  it("emits nothing when nothing was found or the mode is off", () => {
    expect(phiMetricEvents({}, "redact")).toEqual([]);
    expect(phiMetricEvents({ name: 1 }, "off")).toEqual([]);
  });
});
