// Unleash matches REGEX constraints with RE2 (re2js in the Node SDK), whose dialect differs from JavaScript's.
// A pattern is translated once, at compile time: inline flags, POSIX classes, RE2's \s, \A, \z, \Q…\E and octal
// escapes become plain JavaScript; what RE2 refuses (lookaround, backreferences, unknown escapes) is refused here.

type Ranges = readonly (readonly [number, number])[];

const WORD: Ranges = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];

const POSIX: Record<string, Ranges> = {
  alnum: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  alpha: [
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  ascii: [[0x00, 0x7f]],
  blank: [
    [0x09, 0x09],
    [0x20, 0x20],
  ],
  cntrl: [
    [0x00, 0x1f],
    [0x7f, 0x7f],
  ],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [
    [0x21, 0x2f],
    [0x3a, 0x40],
    [0x5b, 0x60],
    [0x7b, 0x7e],
  ],
  space: [
    [0x09, 0x0d],
    [0x20, 0x20],
  ],
  upper: [[0x41, 0x5a]],
  word: WORD,
  xdigit: [
    [0x30, 0x39],
    [0x41, 0x46],
    [0x61, 0x66],
  ],
};

// RE2's Perl classes are ASCII-only (JavaScript's \s also takes Unicode spaces).
const PERL: Record<string, Ranges> = {
  d: POSIX.digit!,
  s: [
    [0x09, 0x0a],
    [0x0c, 0x0d],
    [0x20, 0x20],
  ],
  w: WORD,
};

const SIMPLE_ESCAPES: Record<string, string> = { a: "\\x07", f: "\\f", n: "\\n", r: "\\r", t: "\\t", v: "\\v" };

const codePoint = (n: number) => `\\u{${n.toString(16)}}`;

/** Class items (no brackets) for `ranges`, or for everything outside them. */
function rangeItems(ranges: Ranges, negate: boolean): string {
  let items = ranges;
  if (negate) {
    const complement: [number, number][] = [];
    let next = 0;
    for (const [low, high] of ranges) {
      if (low > next) complement.push([next, low - 1]);
      next = high + 1;
    }
    if (next <= 0x10ffff) complement.push([next, 0x10ffff]);
    items = complement;
  }
  return items.map(([low, high]) => (low === high ? codePoint(low) : `${codePoint(low)}-${codePoint(high)}`)).join("");
}

/** A literal character, escaped unless it is a letter or digit. */
const literal = (char: string) => (/^[\p{L}\p{N}]$/u.test(char) ? char : codePoint(char.codePointAt(0)!));

interface Frame {
  ignoreCase: boolean;
  multiline: boolean;
  dotAll: boolean;
  ungreedy: boolean;
  /** Whether JavaScript matches case-insensitively where this group starts. */
  baseIgnoreCase: boolean;
}

/** Compiles an RE2 pattern (Unleash's regex dialect) to a RegExp; throws, naming the problem, on what RE2 refuses. */
export function compileRe2(pattern: string, caseInsensitive = false): RegExp {
  let out = "";
  let i = 0;
  let globalIgnoreCase = caseInsensitive;
  let flags: Frame = {
    ignoreCase: caseInsensitive,
    multiline: false,
    dotAll: false,
    ungreedy: false,
    baseIgnoreCase: caseInsensitive,
  };
  let jsIgnoreCase = caseInsensitive;
  let modifiers = 0; // modifier groups `(?i:` opened in the current group, closed with it or at `|`
  const stack: { frame: Frame; modifiers: number; jsIgnoreCase: boolean }[] = [];

  const fail = (message: string): never => {
    throw new Error(`${message} at offset ${i} of /${pattern}/`);
  };
  // A scoped (?i) or (?-i) needs a modifier group, opened lazily before the next atom.
  const sync = () => {
    if (flags.ignoreCase === jsIgnoreCase) return;
    out += flags.ignoreCase ? "(?i:" : "(?-i:";
    modifiers++;
    jsIgnoreCase = flags.ignoreCase;
  };
  // Under RE2's U flag a quantifier is lazy unless followed by `?`.
  const quantifier = (text: string) => {
    const marked = pattern[i] === "?";
    if (marked) i++;
    out += marked !== flags.ungreedy ? `${text}?` : text;
  };
  const closeModifiers = () => {
    out += ")".repeat(modifiers);
    modifiers = 0;
    jsIgnoreCase = flags.baseIgnoreCase;
  };

  /** An escape after `\` at `i` (which points past the backslash); `inClass` yields class items. */
  const escaped = (inClass: boolean): string => {
    const char = pattern[i++];
    if (char === undefined) return fail("trailing backslash");
    const perl = PERL[char.toLowerCase()];
    if (perl) {
      const negate = char !== char.toLowerCase();
      if (inClass) return rangeItems(perl, negate);
      return `[${rangeItems(perl, negate)}]`;
    }
    if (SIMPLE_ESCAPES[char]) return SIMPLE_ESCAPES[char];
    if (char === "x") {
      const braced = /^\{([0-9a-fA-F]{1,6})\}/.exec(pattern.slice(i));
      const plain = /^[0-9a-fA-F]{2}/.exec(pattern.slice(i));
      const hex = braced?.[1] ?? plain?.[0];
      if (hex === undefined || Number.parseInt(hex, 16) > 0x10ffff) return fail("invalid \\x escape");
      i += (braced ?? plain)![0].length;
      return codePoint(Number.parseInt(hex, 16));
    }
    if (char >= "0" && char <= "7") {
      // \0 and \1..\7 followed by more octal digits are octal; a lone \1..\7 would be a backreference.
      const digits = /^[0-7]{0,2}/.exec(pattern.slice(i))![0];
      if (char !== "0" && digits === "") return fail("backreferences are not supported");
      i += digits.length;
      return codePoint(Number.parseInt(char + digits, 8));
    }
    if (char === "p" || char === "P") {
      const braced = /^\{(\^?)(\w+)\}/.exec(pattern.slice(i));
      const name = braced ? braced[2]! : pattern[i];
      if (!name || !/^\w+$/.test(name)) return fail("invalid Unicode class");
      i += braced ? braced[0].length : 1;
      const negate = (char === "P") !== Boolean(braced?.[1]);
      const property = name.length <= 2 || name === "Any" ? name : `Script=${name}`;
      return `\\${negate ? "P" : "p"}{${property}}`;
    }
    if (!inClass && (char === "b" || char === "B")) return `\\${char}`;
    if (!inClass && char === "A") return "^";
    if (!inClass && char === "z") return "$";
    if (char.charCodeAt(0) < 0x80 && !/[A-Za-z0-9]/.test(char)) return codePoint(char.charCodeAt(0));
    return fail(`invalid escape \\${char}`);
  };

  const characterClass = (): string => {
    let items = "";
    if (pattern[i] === "^") {
      items += "^";
      i++;
    }
    for (let first = true; ; first = false) {
      const char = pattern[i];
      if (char === undefined) return fail("missing ]");
      if (char === "]" && !first) break;
      if (pattern.startsWith("[:", i)) {
        const end = pattern.indexOf(":]", i + 2);
        const name = end < 0 ? "" : pattern.slice(i + 2, end);
        const ranges = POSIX[name.replace(/^\^/, "")];
        if (!ranges) return fail(`invalid POSIX class [:${name}:]`);
        items += rangeItems(ranges, name.startsWith("^"));
        i = end + 2;
      } else if (char === "\\") {
        i++;
        items += escaped(true);
      } else {
        const whole = String.fromCodePoint(pattern.codePointAt(i)!);
        items += whole === "-" ? "-" : literal(whole);
        i += whole.length;
      }
    }
    i++;
    return `[${items}]`;
  };

  while (i < pattern.length) {
    const char = pattern[i]!;
    if (char === "(") {
      let open = "(";
      if (pattern.startsWith("(?", i)) {
        const named = /^\(\?P?<([A-Za-z_]\w*)>/.exec(pattern.slice(i));
        const flagged = /^\(\?([imsU]*)(?:-([imsU]*))?([:)])/.exec(pattern.slice(i));
        if (named) {
          open = `(?<${named[1]}>`;
          i += named[0].length;
        } else if (flagged && (flagged[1] || flagged[2] || flagged[3] === ":")) {
          const [whole, on = "", off = "", end] = flagged;
          const next = { ...flags };
          for (const [letters, value] of [
            [on, true],
            [off, false],
          ] as const) {
            if (letters.includes("i")) next.ignoreCase = value;
            if (letters.includes("m")) next.multiline = value;
            if (letters.includes("s")) next.dotAll = value;
            if (letters.includes("U")) next.ungreedy = value;
          }
          i += whole.length;
          if (end === ")") {
            // Flags for the rest of the group; at the very start of the pattern they become the RegExp's own.
            if (stack.length === 0 && modifiers === 0 && (out === "" || out === "^")) {
              globalIgnoreCase = jsIgnoreCase = next.ignoreCase;
              next.baseIgnoreCase = next.ignoreCase;
            }
            flags = next;
            continue;
          }
          sync();
          stack.push({ frame: flags, modifiers, jsIgnoreCase });
          flags = { ...next, baseIgnoreCase: jsIgnoreCase };
          modifiers = 0;
          out += "(?:";
          continue;
        } else {
          return fail("unsupported group syntax (RE2 has no lookaround)");
        }
      } else {
        i++;
      }
      sync();
      stack.push({ frame: flags, modifiers, jsIgnoreCase });
      flags = { ...flags, baseIgnoreCase: jsIgnoreCase };
      modifiers = 0;
      out += open;
      continue;
    }
    i++;
    if (char === ")") {
      const outer = stack.pop();
      if (!outer) return fail("unexpected )");
      closeModifiers();
      out += ")";
      flags = outer.frame;
      modifiers = outer.modifiers;
      jsIgnoreCase = outer.jsIgnoreCase;
    } else if (char === "|") {
      closeModifiers();
      out += "|";
    } else if (char === "^") {
      out += flags.multiline ? "(?<![^\\n])" : "^";
    } else if (char === "$") {
      out += flags.multiline ? "(?![^\\n])" : "$";
    } else if (char === "*" || char === "+" || char === "?") {
      quantifier(char);
    } else if (char === "{") {
      const repeat = /^(\d+)(?:,(\d*))?\}/.exec(pattern.slice(i));
      if (repeat) {
        if (Number(repeat[1]) > 1000 || Number(repeat[2] || 0) > 1000) return fail("repeat count above 1000");
        i += repeat[0].length;
        quantifier(`{${repeat[0]}`);
      } else {
        sync();
        out += "\\{";
      }
    } else if (char === ".") {
      sync();
      out += flags.dotAll ? "[^]" : "[^\\n]";
    } else if (char === "[") {
      sync();
      out += characterClass();
    } else if (char === "\\" && pattern[i] === "Q") {
      const end = pattern.indexOf("\\E", i + 1);
      const quoted = pattern.slice(i + 1, end < 0 ? undefined : end);
      i = end < 0 ? pattern.length : end + 2;
      sync();
      for (const part of quoted) out += literal(part);
    } else if (char === "\\") {
      const item = escaped(false);
      if (item !== "^" && item !== "$") sync();
      out += item;
    } else {
      sync();
      const whole = char + (/[\uD800-\uDBFF]/.test(char) && pattern[i] ? pattern[i++] : "");
      out += literal(whole);
    }
  }
  if (stack.length > 0) return fail("missing )");
  closeModifiers();
  try {
    return new RegExp(out, globalIgnoreCase ? "iu" : "u");
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
}
