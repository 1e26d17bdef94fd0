// Keys are bytes, ordered byte-wise. The key index keys its ordered map by a
// "binary string" (one UTF-16 code unit per byte, 0–255), because JS compares
// such strings natively and in exactly byte order, which is faster than a
// Uint8Array comparator called from JS on every tree step.

const chunkSize = 4096;

/** The binary string of `bytes`: char code i = byte i. Preserves byte order. */
export function keyString(bytes: Uint8Array): string {
  if (bytes.length <= chunkSize) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let result = "";
  for (let start = 0; start < bytes.length; start += chunkSize) {
    result += String.fromCharCode.apply(null, bytes.subarray(start, start + chunkSize) as unknown as number[]);
  }
  return result;
}

/** The bytes of a binary string made by keyString. */
export function keyBytes(key: string): Uint8Array {
  const bytes = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
  return bytes;
}

/** Byte-wise comparison, like Go's bytes.Compare. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < length; i++) {
    const difference = (a[i] as number) - (b[i] as number);
    if (difference !== 0) return difference < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
