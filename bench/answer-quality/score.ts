// Scores answers to the question set (test/fixtures/kb/questions.ts). Pure, so that the workers test
// and `npm run eval:answers` judge alike.
import type { SampleQuestion } from "../../test/fixtures/kb/questions.ts";

/** One question as answered: the answer's text and the full text of each chunk it cites. */
export interface AskedQuestion extends SampleQuestion {
  content: string;
  citedChunks: string[];
}

export interface Verdict {
  answerable: boolean;
  /** Answerable: the answer quotes one of the passages and cites a chunk holding one. */
  correct: boolean;
  /** The "not covered" answer, with no citation. */
  declined: boolean;
  citations: number;
  /** Citations of a chunk holding one of the question's passages (none, for a question nothing answers). */
  preciseCitations: number;
}

export interface AnswerFigures {
  answerable: number;
  answeredCorrectly: number;
  /** Answerable questions answered with "not covered". */
  wronglyDeclined: number;
  unanswerable: number;
  declined: number;
  citations: number;
  preciseCitations: number;
}

// PDF line breaks and list layout are not part of the words: compare with whitespace collapsed.
const flat = (text: string) => text.replace(/\s+/g, " ").trim();

export function judge(asked: AskedQuestion, notCovered: string): Verdict {
  const passages = asked.passages.map(flat);
  const content = flat(asked.content);
  const holds = (chunk: string) => passages.some((passage) => flat(chunk).includes(passage));
  return {
    answerable: passages.length > 0,
    correct: passages.some((passage) => content.includes(passage)) && asked.citedChunks.some(holds),
    declined: content === flat(notCovered) && asked.citedChunks.length === 0,
    citations: asked.citedChunks.length,
    preciseCitations: asked.citedChunks.filter(holds).length,
  };
}

export function figuresOf(verdicts: Verdict[]): AnswerFigures {
  const figures: AnswerFigures = {
    answerable: 0,
    answeredCorrectly: 0,
    wronglyDeclined: 0,
    unanswerable: 0,
    declined: 0,
    citations: 0,
    preciseCitations: 0,
  };
  for (const verdict of verdicts) {
    figures.citations += verdict.citations;
    figures.preciseCitations += verdict.preciseCitations;
    if (verdict.answerable) {
      figures.answerable++;
      if (verdict.correct) figures.answeredCorrectly++;
      if (verdict.declined) figures.wronglyDeclined++;
    } else {
      figures.unanswerable++;
      if (verdict.declined) figures.declined++;
    }
  }
  return figures;
}

const share = (part: number, whole: number) =>
  whole === 0 ? "–" : `${part}/${whole} (${Math.round((100 * part) / whole)}%)`;

/** The three figures as one line each, as docs/answers.md shows them. */
export function describeFigures(f: AnswerFigures): string[] {
  return [
    `answered correctly: ${share(f.answeredCorrectly, f.answerable)} of answerable questions (${f.wronglyDeclined} declined)`,
    `declined: ${share(f.declined, f.unanswerable)} of unanswerable questions`,
    `citation precision: ${share(f.preciseCitations, f.citations)} of citations hold the question's passage`,
  ];
}
