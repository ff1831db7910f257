import type { Config } from "../config.ts";
import type { MetricEvent } from "../metrics/record.ts";

// PHI-like spans in text bound for a cloud model (docs/answers.md#phi-safety). Detection favours precision
// on clinical questions: names, dates of birth and record numbers need a cue ("patient", "DOB", "MRN"),
// so "metformin 500 mg since 2020-01-01" passes untouched. Only types, offsets and counts come out, so
// logs and metrics cannot carry the PHI itself.

const PHI_TYPES = ["name", "dob", "mrn", "ssn", "phone", "email", "address"] as const;
export type PhiType = (typeof PHI_TYPES)[number];
type PhiMode = Config["PHI_MODE"];
/** Spans found per type; types not found are absent. */
export type PhiCounts = Partial<Record<PhiType, number>>;

interface PhiSpan {
  type: PhiType;
  /** Offsets into the scanned text, end exclusive. */
  start: number;
  end: number;
}

interface Detector {
  type: PhiType;
  /** Global, with hasIndices (`d`): the span is the group named `phi` when there is one, else the whole match. */
  pattern: RegExp;
  /** A second look at a match the pattern alone cannot judge. */
  accept?: (span: string) => boolean;
}

const MONTH = String.raw`(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?`;
const DATE = [
  String.raw`\d{4}-\d{1,2}-\d{1,2}`, // 1980-02-14
  String.raw`\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})`, // 02/14/1980, 14.02.1980
  String.raw`\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?${MONTH},?\s+\d{4}`, // 14 Feb 1980
  String.raw`${MONTH}\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}`, // February 14, 1980
].join("|");
const DOB_CUE = String.raw`\b(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date|born(?:\s+on)?)`;

const STREET_SUFFIX =
  "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Close|Crescent";
const ADDRESS = [
  String.raw`\b\d{1,6}[A-Za-z]?\s+(?:(?:\d+(?:st|nd|rd|th)|\p{Lu}[\p{L}'’.-]*)\s+){1,4}(?:${STREET_SUFFIX})\b\.?(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?`,
  String.raw`(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|Flat|#)\.?\s*#?\s*[\p{L}\p{N}-]+)?`, // Apt 4B
  String.raw`(?:,\s*\p{Lu}\p{Ll}+(?:\s\p{Lu}\p{Ll}+){0,2}(?:,?\s+[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?)?)?`, // , Springfield, IL 62704
].join("");

const DETECTORS: Detector[] = [
  // Anchored at the start of a run of address characters, so a long run without "@" is scanned once.
  { type: "email", pattern: /(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/dg },
  // Social Security Administration rules: no area 000, 666 or 900-999, no group 00, no serial 0000.
  { type: "ssn", pattern: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/dg },
  {
    type: "ssn",
    pattern:
      /\b(?:ssn|ss#|social\s+security(?:\s+(?:number|no\.?|#))?)\s*(?:is\s+)?[:#]?\s*(?<phi>\d{3}[- ]?\d{2}[- ]?\d{4})\b/dgi,
  },
  {
    type: "mrn",
    pattern:
      /\b(?:mrn|mr\s?#|mr\s?no\.?|medical\s+record\s+(?:number|no\.?|#)|patient\s+id(?:entifier)?)\s*(?:is\s+|number\s+|no\.?\s*)?[:#=]?\s*(?<phi>(?=[a-z]*\d)[a-z0-9]{6,10})\b/dgi,
  },
  { type: "dob", pattern: new RegExp(String.raw`${DOB_CUE}\s*(?:is|was|of)?\s*[:#-]?\s*(?<phi>${DATE})(?!\d)`, "dgi") },
  // North American: (555) 123-4567, 555-123-4567, 555.123.4567 (one separator throughout), with an optional 1.
  {
    type: "phone",
    pattern: /(?<![\w+.-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}([.-])\d{3}\1\d{4})(?![\w]|[.-]\d)/dg,
  },
  // After a cue, spaces or no separators at all: "tel 555 123 4567", "cell: 5551234567".
  {
    type: "phone",
    pattern:
      /\b(?:phone|tel|telephone|cell|mobile|fax|call)\b\.?\s*(?:no\.?|number|#)?\s*[:#]?\s*(?<phi>(?:\+?1\s?)?\(?\d{3}\)?\s?\d{3}[\s.-]?\d{4})(?!\d)/dgi,
  },
  // International, led by +: 8 to 15 digits (E.164) in groups.
  {
    type: "phone",
    pattern: /(?<![\w+])\+(?:\d{8,15}|\d{1,3}(?:\s?\(\d{1,5}\)|[\s.-]\d{1,5}){1,6})(?![\w]|[.-]\d)/dg,
    accept: (span) => /^\D*(?:\d\D*){8,15}$/.test(span),
  },
  { type: "address", pattern: new RegExp(ADDRESS, "dgu") },
];

// Name cues. Clinical words ("patient", "Pt:", "name:") take a first and last name; titles take a surname.
const CLINICAL_CUE =
  /\b(?:(?:patient|pt|client|resident)\b(?:['’]s)?(?:\s+name\b)?\.?\s*[,:]?|(?<!(?:brand|generic|trade|drug|chemical)\s+)(?:full\s+)?name(?:\s*:|\s+is\b|d\b))\s*/gi;
const TITLE_CUE = /\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof)\b\.?\s+/g;
// O'Brien, McDonald, Smith-Jones, García; an initial ("A.") only between two words.
const NAME_WORD = String.raw`(?:\p{Lu}['’])?\p{Lu}\p{Ll}+(?:\p{Lu}\p{Ll}+)?(?:-\p{Lu}\p{Ll}+)*(?![\p{L}\p{N}])`;
const NAME_RUN = new RegExp(String.raw`${NAME_WORD}(?: (?:\p{Lu}\. )?${NAME_WORD}){0,2}`, "uy");
const NAME_WORDS = new RegExp(NAME_WORD, "gu");
// Capitalised words that follow a cue in clinical text without being a name ("Patient Safety", "Dr. Guidelines").
const NOT_NAMES = new Set(
  "Type Stage Grade Class Group Care Safety Education Controlled Centered Centred Reported Outcome Outcomes History Information Portal Record Records Health Medical Clinical Guideline Guidelines Criteria Score Scale Syndrome Disease Protocol Assessment Questionnaire Management Protection Experience Satisfaction Population Cohort Trial Study Unit Ward Room Bed Emergency Department Hospital Clinic Center Centre Service Services Transfer Admission Discharge Summary Presents Presented With Without Has Had Is Was Who Should Can May Received Needs Heart Kidney Liver Lung Renal Failure Cancer Diabetes Sepsis Stroke Pain Blood Pressure".split(
    " ",
  ),
);

function nameSpans(text: string, cue: RegExp, minWords: number): PhiSpan[] {
  const spans: PhiSpan[] = [];
  for (const match of text.matchAll(cue)) {
    NAME_RUN.lastIndex = match.index + match[0].length;
    const run = NAME_RUN.exec(text);
    if (!run) continue;
    let end = run.index;
    let words = 0;
    for (const word of run[0].matchAll(NAME_WORDS)) {
      if (NOT_NAMES.has(word[0])) break;
      end = run.index + word.index + word[0].length;
      words++;
    }
    if (words >= minWords) spans.push({ type: "name", start: run.index, end });
  }
  return spans;
}

/** Later mentions of a cued name's words without the cue ("Patient John Smith ... Smith's labs"). */
function repeatedNames(text: string, names: PhiSpan[]): PhiSpan[] {
  const words = new Set(names.flatMap((span) => text.slice(span.start, span.end).match(NAME_WORDS) ?? []));
  if (words.size === 0) return [];
  // Name words hold only letters, apostrophes and hyphens: nothing to escape.
  const word = String.raw`(?:${[...words].join("|")})(?![\p{L}\p{N}])`;
  const mentions = new RegExp(String.raw`(?<![\p{L}\p{N}])${word}(?: ${word}){0,2}`, "gu");
  return [...text.matchAll(mentions)].map((m) => ({ type: "name", start: m.index, end: m.index + m[0].length }));
}

function patternSpans({ type, pattern, accept }: Detector, text: string): PhiSpan[] {
  const spans: PhiSpan[] = [];
  for (const match of text.matchAll(pattern)) {
    const [start, end] = match.indices?.groups?.phi ?? match.indices?.[0] ?? [0, 0];
    if (!accept || accept(text.slice(start, end))) spans.push({ type, start, end });
  }
  return spans;
}

/** PHI-like spans, sorted and non-overlapping: where two overlap, the earlier wins, then the longer. */
export function detectPhi(text: string): PhiSpan[] {
  const names = [...nameSpans(text, CLINICAL_CUE, 2), ...nameSpans(text, TITLE_CUE, 1)];
  const candidates = [
    ...DETECTORS.flatMap((detector) => patternSpans(detector, text)),
    ...names,
    ...repeatedNames(text, names),
  ];
  // Detectors are listed most specific first, and the sort is stable: an MRN beats a phone on the same digits.
  candidates.sort((a, b) => a.start - b.start || b.end - a.end);
  const spans: PhiSpan[] = [];
  for (const span of candidates) {
    if (span.start >= (spans.at(-1)?.end ?? 0)) spans.push(span);
  }
  return spans;
}

/**
 * Replaces each span with a typed, numbered placeholder: [NAME_1], [PHONE_2]. The same value (ignoring
 * case and spacing) keeps its number, so the model can still tell people and numbers apart.
 */
export function redactPhi(
  text: string,
  spans: PhiSpan[] = detectPhi(text),
): { text: string; spans: PhiSpan[]; counts: PhiCounts } {
  const counts: PhiCounts = {};
  const numbers: Partial<Record<PhiType, Map<string, number>>> = {};
  let out = "";
  let at = 0;
  for (const span of spans) {
    counts[span.type] = (counts[span.type] ?? 0) + 1;
    const value = text.slice(span.start, span.end).toLowerCase().replace(/\s+/g, " ");
    const numbered = numbers[span.type] ?? new Map<string, number>();
    numbers[span.type] = numbered;
    const number = numbered.get(value) ?? numbered.size + 1;
    numbered.set(value, number);
    out += `${text.slice(at, span.start)}[${span.type.toUpperCase()}_${number}]`;
    at = span.end;
  }
  return { text: out + text.slice(at), spans, counts };
}

/**
 * What may leave for a cloud model under a PHI mode. off: the text untouched, nothing scanned.
 * redact: placeholders in place of PHI. block: the same placeholders, and not allowed when anything was found.
 */
export function screenForCloud(text: string, mode: PhiMode): { allowed: boolean; text: string; counts: PhiCounts } {
  if (mode === "off") return { allowed: true, text, counts: {} };
  const redacted = redactPhi(text);
  const found = redacted.spans.length > 0;
  return { allowed: mode === "redact" || !found, text: redacted.text, counts: redacted.counts };
}

/** phi_detections_total increments for the types found; none in off mode, which does not scan. */
export function phiMetricEvents(counts: PhiCounts, mode: PhiMode): MetricEvent[] {
  if (mode === "off") return [];
  return PHI_TYPES.flatMap((type) => {
    const value = counts[type] ?? 0;
    return value > 0 ? [{ name: "phi_detections_total" as const, labels: { type, mode }, value }] : [];
  });
}
