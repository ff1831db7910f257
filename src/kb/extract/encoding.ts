/**
 * Decodes UTF-8 (with or without a BOM) or UTF-16 with a BOM; undefined when the bytes are not such text.
 * Other legacy encodings are refused rather than guessed: a wrong guess would index garbage silently.
 */
export function decodeText(bytes: Uint8Array): string | undefined {
  const encoding =
    bytes[0] === 0xff && bytes[1] === 0xfe ? "utf-16le" : bytes[0] === 0xfe && bytes[1] === 0xff ? "utf-16be" : "utf-8";
  let text: string;
  try {
    // TextDecoder drops the BOM itself.
    text = new TextDecoder(encoding, { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return undefined;
  }
  // Text files never hold NUL; binary files that happen to be valid UTF-8 almost always do.
  return text.includes("\u0000") ? undefined : text;
}
