// Text clean-up shared by every format: one Unicode form, one line ending, plain spaces, paragraphs kept.

const LINE_BREAKS = /\r\n?|[\u2028\u2029\v\f\u0085]/g;
const SPACES = /[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g;
// Zero-width characters and soft hyphens are invisible and split words for search.
const INVISIBLE = /[\u00ad\u200b-\u200d\u2060\ufeff]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROLS = /[\u0000-\u0008\u000e-\u001f\u007f-\u0084\u0086-\u009f]/g;
// A word split at a line end ("inter-\nnational"); "COVID-\n19" and "Anti-\nInflammatory" keep their hyphen.
const SPLIT_WORD = /(\p{L})-[ ]*\n[ ]*(\p{Ll})/gu;

interface NormaliseOptions {
  /** Join words hyphenated across line ends (PDF text, laid out in lines). */
  dehyphenate?: boolean;
}

export function normaliseText(text: string, options: NormaliseOptions = {}): string {
  let result = text
    .normalize("NFC")
    .replace(LINE_BREAKS, "\n")
    .replace(SPACES, " ")
    .replace(INVISIBLE, "")
    .replace(CONTROLS, " ")
    .replace(/ *\n */g, "\n");
  if (options.dehyphenate) result = result.replace(SPLIT_WORD, "$1$2");
  return result
    .replace(/ {2,}/g, " ")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** A heading or title: one line, single spaces. */
export const normaliseLine = (text: string) => normaliseText(text).replace(/\s+/g, " ");
