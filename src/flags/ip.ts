// IPv4/IPv6 addresses and CIDR ranges for the remoteAddress strategy and the IN_CIDR operator. Ranges are parsed
// once at compile time; an address is in a range when their first `bits` bits agree (host bits in a range are
// ignored, as in the Unleash SDKs).

/** A range, or a single address (all bits). IPv4 is one 32-bit word, IPv6 four. */
export interface IpRange {
  readonly v6: boolean;
  readonly words: readonly number[];
  readonly bits: number;
}

function parseV4(text: string): number | undefined {
  const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!parts) return undefined;
  let word = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(parts[i]);
    if (octet > 255) return undefined;
    word = word * 256 + octet;
  }
  return word;
}

function parseV6(text: string): number[] | undefined {
  const address = text.replace(/%.*$/, ""); // a zone id (fe80::1%eth0) does not take part in matching
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined): number[] | undefined => {
    if (!half) return [];
    const result: number[] = [];
    const parts = half.split(":");
    for (const [index, part] of parts.entries()) {
      if (index === parts.length - 1 && part.includes(".")) {
        const v4 = parseV4(part);
        if (v4 === undefined) return undefined;
        result.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        result.push(Number.parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return result;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return [0, 2, 4, 6].map((i) => ((all[i]! << 16) | all[i + 1]!) >>> 0);
}

/** An address or a CIDR range ("10.0.0.0/8", "2001:db8::/32", "127.0.0.1"), or undefined when invalid. */
export function parseIpRange(text: string): IpRange | undefined {
  const [address = "", prefix, extra] = text.trim().split("/");
  if (extra !== undefined) return undefined;
  const v4 = parseV4(address);
  const words = v4 === undefined ? parseV6(address) : [v4];
  if (!words) return undefined;
  const width = words.length * 32;
  if (prefix === undefined) return { v6: words.length > 1, words, bits: width };
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > width) return undefined;
  return { v6: words.length > 1, words, bits: Number(prefix) };
}

export function inRange(range: IpRange, address: IpRange): boolean {
  if (range.v6 !== address.v6) return false;
  for (let i = 0, bits = range.bits; bits > 0; i++, bits -= 32) {
    const mask = bits >= 32 ? -1 : -1 << (32 - bits);
    if (((range.words[i]! ^ address.words[i]!) & mask) !== 0) return false;
  }
  return true;
}

// The same context address is matched by many flags in a row (evaluateAll): parse it once.
let lastText: string | undefined;
let lastAddress: IpRange | undefined;

/** The context's address, parsed (remembered for the next call with the same text). */
export function contextAddress(text: string): IpRange | undefined {
  if (text !== lastText) {
    lastAddress = parseIpRange(text);
    lastText = text;
  }
  return lastAddress?.bits === (lastAddress?.v6 ? 128 : 32) ? lastAddress : undefined;
}
