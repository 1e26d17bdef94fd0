// Which JSON strings etcd's gateway takes for a bytes field, and its words for
// the others. etcd 3.4's gateway decodes a bytes field with Go's
// encoding/json, that is base64.StdEncoding.Decode: the standard alphabet,
// padding required, "\r" and "\n" skipped anywhere, nothing after the
// padding. A refused string is InvalidArgument "illegal base64 data at input
// byte N" (Go's CorruptInputError), N counted as Go counts it. protobuf-es
// alone would also take the URL-safe alphabet and a missing padding, and say
// something else; clients such as etcd3gw show the gateway's text.

/** Char code -> 1 for the 64 characters of the standard alphabet (a table: values reach megabytes). */
const inStandardAlphabet = new Uint8Array(128);
for (const char of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") inStandardAlphabet[char.charCodeAt(0)] = 1;

const newline = 0x0a;
const carriageReturn = 0x0d;
const padding = 0x3d; // "="

const isNewline = (code: number) => code === newline || code === carriageReturn;

/** Go's CorruptInputError offset for `text`, or undefined when Go decodes it. */
export function goBase64ErrorOffset(text: string): number | undefined {
  if (isPlainStandardBase64(text)) return undefined;
  let index = 0;
  while (index < text.length) {
    const quantum = decodeQuantum(text, index);
    if (quantum.errorOffset !== undefined) return quantum.errorOffset;
    if (quantum.next === index) break;
    index = quantum.next;
  }
  return undefined;
}

/** The common case, checked in one pass: whole quanta of the alphabet, padding only at the end, no newlines. */
function isPlainStandardBase64(text: string): boolean {
  if (text.length % 4 !== 0) return false;
  let end = text.length;
  if (text.charCodeAt(end - 1) === padding) end -= text.charCodeAt(end - 2) === padding ? 2 : 1;
  for (let index = 0; index < end; index++) {
    if (inStandardAlphabet[text.charCodeAt(index)] !== 1) return false;
  }
  return true;
}

/** Go's message for a string it does not decode as base64. */
export function goBase64Message(errorOffset: number): string {
  return `illegal base64 data at input byte ${errorOffset}`;
}

/**
 * One quantum of up to four characters from `start` (Go's decodeQuantum):
 * where the next one starts, or where the input is corrupt.
 */
function decodeQuantum(text: string, start: number): { next: number; errorOffset?: number } {
  let index = start;
  for (let taken = 0; taken < 4; taken++) {
    if (index === text.length) {
      // Input ended inside a quantum: fine only on its boundary (padding is required).
      return taken === 0 ? { next: index } : { next: index, errorOffset: index - taken };
    }
    const code = text.charCodeAt(index);
    index++;
    if (inStandardAlphabet[code] === 1) continue;
    if (isNewline(code)) {
      taken--;
      continue;
    }
    if (code !== padding) return { next: index, errorOffset: index - 1 };
    // Padding: "==" after two characters, "=" after three.
    if (taken < 2) return { next: index, errorOffset: index - 1 };
    if (taken === 2) {
      while (isNewline(text.charCodeAt(index))) index++;
      if (index === text.length) return { next: index, errorOffset: text.length };
      if (text.charCodeAt(index) !== padding) return { next: index, errorOffset: index - 1 };
      index++;
    }
    while (isNewline(text.charCodeAt(index))) index++;
    // Nothing may follow the padding.
    return index < text.length ? { next: index, errorOffset: index } : { next: index };
  }
  return { next: index };
}
