// Reads HPACK header blocks (RFC 7541) as an HTTP/2 server would, only to find
// `:authority` values that the server would refuse, and rewrites those values.
//
// etcd 3.4's etcdctl dials some endpoints as grpc-go target
// "passthrough:///http://127.0.0.1:2379", so its requests carry
// `:authority: http://127.0.0.1:2379`. nghttp2 (Node) and Bun reset such a
// stream with PROTOCOL_ERROR ('/' is not an authority character); etcd's Go
// server accepts it. We turn the value into `127.0.0.1:2379`.
//
// The decoder mirrors the client's dynamic table: for each entry its size and
// whether its name is `:authority` (values are never needed again). A rewritten
// representation keeps its kind (incremental indexing stays incremental), so
// the server adds the same entries at the same positions, and:
// Invariant: a rewritten value is never longer than the original, so the
// server's entries are never larger than the client's, and the server's table
// never evicts an entry the client may still reference.
//
// The table starts at 4096 bytes on both sides (SETTINGS_HEADER_TABLE_SIZE's
// initial value, which our server keeps); an encoder that uses any other size
// must say so with a dynamic table size update in a block (RFC 7541 §4.2),
// which we follow, so the server's SETTINGS never need to be read here.
//
// A rewritten value is written as a plain string; it can take a few more bytes
// than the client's Huffman-coded original, so the caller re-frames the block.
import { huffmanDecode, huffmanDecodedLengthMax } from "./hpack-huffman.ts";

/** SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 7540 §6.5.2). */
const headerTableBytesDefault = 4096;
/** A client announcing a larger table than this is not followed (servers advertise far less). */
const headerTableBytesMax = 1 << 20;
/** RFC 7541 §4.1: every entry costs 32 bytes on top of its name and value. */
const entryOverheadBytes = 32;
/** HPACK integers beyond this are malformed for our purposes (lengths and indexes). */
const integerMax = 2 ** 31 - 1;

// Names of the static table (RFC 7541 Appendix A), index 1..61; only their
// lengths matter here, and that index 1 is `:authority`.
// prettier-ignore
const staticNames = [
  ":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme", ":status", ":status", ":status",
  ":status", ":status", ":status", ":status", "accept-charset", "accept-encoding", "accept-language",
  "accept-ranges", "accept", "access-control-allow-origin", "age", "allow", "authorization", "cache-control",
  "content-disposition", "content-encoding", "content-language", "content-length", "content-location",
  "content-range", "content-type", "cookie", "date", "etag", "expect", "expires", "from", "host", "if-match",
  "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "link", "location",
  "max-forwards", "proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
  "server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent", "vary", "via",
  "www-authenticate",
];
const staticEntryCount = staticNames.length;
const staticAuthorityIndex = 1;

const authorityName = new TextEncoder().encode(":authority");

// Characters nghttp2 accepts in an authority (RFC 3986 host, port, userinfo).
const authorityCharacter = new Uint8Array(256);
for (const character of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%[]") {
  authorityCharacter[character.charCodeAt(0)] = 1;
}

const localhost = new TextEncoder().encode("localhost");

/**
 * Makes an authority valid: drops a leading `scheme://`, anything from the first
 * '/', '?' or '#', then any character still not allowed. A path (grpc-go's
 * authority for a unix socket, `/run/etcd/client.sock:2`) becomes its last
 * segment. Nothing left: as much of `localhost` as fits. Never longer than the
 * input.
 */
export function validAuthority(value: Uint8Array): Uint8Array {
  let start = 0;
  const schemeEnd = indexOfSchemeSeparator(value);
  if (schemeEnd >= 0) start = schemeEnd + 3;
  else if (value[0] === 0x2f) start = value.lastIndexOf(0x2f) + 1;
  let end = start;
  while (end < value.length && value[end] !== 0x2f && value[end] !== 0x3f && value[end] !== 0x23) end++;
  const result = new Uint8Array(end - start);
  let length = 0;
  for (let position = start; position < end; position++) {
    const byte = value[position] as number;
    if (authorityCharacter[byte] === 1) result[length++] = byte;
  }
  if (length === 0 && value.length > 0) return localhost.subarray(0, Math.min(localhost.length, value.length));
  return result.subarray(0, length);
}

/** The index of "://" after an RFC 3986 scheme at the start of value, or -1. */
function indexOfSchemeSeparator(value: Uint8Array): number {
  const first = value[0];
  if (first === undefined || !isAsciiLetter(first)) return -1;
  for (let position = 1; position < value.length; position++) {
    const byte = value[position] as number;
    if (byte === 0x3a) return value[position + 1] === 0x2f && value[position + 2] === 0x2f ? position : -1;
    if (!isAsciiLetter(byte) && !(byte >= 0x30 && byte <= 0x39) && byte !== 0x2b && byte !== 0x2d && byte !== 0x2e) return -1;
  }
  return -1;
}

function isAsciiLetter(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

function isValidAuthority(bytes: Uint8Array, start: number, end: number): boolean {
  for (let position = start; position < end; position++) {
    if (authorityCharacter[bytes[position] as number] !== 1) return false;
  }
  return true;
}

/** One connection's decoding context (client → server). */
export class AuthorityHeaderRewriter {
  // The dynamic table as a ring, oldest entry at `oldest`.
  private entryBytes = new Int32Array(headerTableBytesDefault / entryOverheadBytes + 1);
  private entryNameBytes = new Int32Array(this.entryBytes.length);
  private entryIsAuthority = new Uint8Array(this.entryBytes.length);
  private oldest = 0;
  private entryCount = 0;
  private tableBytes = 0;
  private tableBytesMax = headerTableBytesDefault;

  // The block being read.
  private block: Uint8Array = new Uint8Array(0);
  private position = 0;
  private stringStart = 0;
  private stringEnd = 0;
  private stringHuffman = false;
  /** Decoded strings we must look at (names, `:authority` values); grows as needed. */
  private scratch = new Uint8Array(256);
  /** Rewrites found in the block: [start, end) of a value string and its replacement. */
  private readonly edits: Array<{ start: number; end: number; value: Uint8Array }> = [];

  /**
   * Returns the block itself when every `:authority` in it is valid, a new
   * block with those values rewritten otherwise, or null when the block is not
   * valid HPACK (the caller then stops rewriting and lets the server judge).
   */
  rewrite(block: Uint8Array): Uint8Array | null {
    this.block = block;
    this.position = 0;
    this.edits.length = 0;
    const ok = this.readRepresentations();
    this.block = new Uint8Array(0);
    if (!ok) return null;
    return this.edits.length === 0 ? block : this.applyEdits(block);
  }

  private readRepresentations(): boolean {
    const block = this.block;
    while (this.position < block.length) {
      const first = block[this.position] as number;
      if (first & 0x80) {
        // Indexed field: the server already holds a valid value for it.
        const index = this.readInteger(7);
        if (index <= 0 || !this.indexExists(index)) return false;
      } else if (first & 0x40) {
        if (!this.readLiteral(6, true)) return false;
      } else if (first & 0x20) {
        const size = this.readInteger(5);
        if (size < 0 || size > headerTableBytesMax) return false;
        this.resizeTable(size);
      } else {
        // Literal without indexing (0000) or never indexed (0001).
        if (!this.readLiteral(4, false)) return false;
      }
    }
    return true;
  }

  private readLiteral(prefixBits: number, addsEntry: boolean): boolean {
    const nameIndex = this.readInteger(prefixBits);
    if (nameIndex < 0) return false;
    let isAuthority: boolean;
    let nameBytes: number;
    if (nameIndex === 0) {
      if (!this.readString()) return false;
      nameBytes = this.decodedStringLength();
      if (nameBytes < 0) return false;
      isAuthority = nameBytes === authorityName.length && this.stringEquals(authorityName);
    } else {
      if (!this.indexExists(nameIndex)) return false;
      isAuthority = this.indexIsAuthority(nameIndex);
      nameBytes = this.indexNameBytes(nameIndex);
    }
    const valueStart = this.position;
    if (!this.readString()) return false;
    let valueBytes: number;
    if (isAuthority) {
      valueBytes = this.checkAuthority(valueStart);
    } else if (addsEntry) {
      valueBytes = this.decodedStringLength();
    } else {
      return true; // nothing to learn from a value that is neither indexed nor an authority
    }
    if (valueBytes < 0) return false;
    if (addsEntry) this.addEntry(nameBytes + valueBytes + entryOverheadBytes, nameBytes, isAuthority);
    return true;
  }

  /** Records an edit when the value just read is not a valid authority; returns its decoded length (-1: bad Huffman). */
  private checkAuthority(valueStart: number): number {
    let bytes: Uint8Array;
    let start: number;
    let end: number;
    if (this.stringHuffman) {
      const length = this.decodeStringIntoScratch();
      if (length < 0) return -1;
      bytes = this.scratch;
      start = 0;
      end = length;
    } else {
      bytes = this.block;
      start = this.stringStart;
      end = this.stringEnd;
    }
    if (!isValidAuthority(bytes, start, end)) {
      const value = validAuthority(bytes.slice(start, end));
      this.edits.push({ start: valueStart, end: this.stringEnd, value });
    }
    return end - start;
  }

  private applyEdits(block: Uint8Array): Uint8Array {
    let length = block.length;
    for (const edit of this.edits) length += integerBytes(edit.value.length, 7) + edit.value.length - (edit.end - edit.start);
    const output = new Uint8Array(length);
    let from = 0;
    let to = 0;
    for (const edit of this.edits) {
      output.set(block.subarray(from, edit.start), to);
      to += edit.start - from;
      to = writeInteger(output, to, edit.value.length, 7, 0x00); // a plain string, not Huffman-coded
      output.set(edit.value, to);
      to += edit.value.length;
      from = edit.end;
    }
    output.set(block.subarray(from), to);
    return output;
  }

  /** Reads an HPACK integer (RFC 7541 §5.1) with the given prefix; -1 if malformed or too large. */
  private readInteger(prefixBits: number): number {
    const block = this.block;
    const prefixMax = (1 << prefixBits) - 1;
    let value = (block[this.position++] as number) & prefixMax;
    if (value < prefixMax) return value;
    for (let shift = 0; shift <= 28; shift += 7) {
      const byte = block[this.position++];
      if (byte === undefined) return -1;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value <= integerMax ? value : -1;
    }
    return -1;
  }

  private readString(): boolean {
    const first = this.block[this.position];
    if (first === undefined) return false;
    this.stringHuffman = (first & 0x80) !== 0;
    const length = this.readInteger(7);
    if (length < 0 || this.position + length > this.block.length) return false;
    this.stringStart = this.position;
    this.stringEnd = this.position + length;
    this.position = this.stringEnd;
    return true;
  }

  private decodedStringLength(): number {
    if (!this.stringHuffman) return this.stringEnd - this.stringStart;
    return huffmanDecode(this.block, this.stringStart, this.stringEnd, null);
  }

  private decodeStringIntoScratch(): number {
    const needed = huffmanDecodedLengthMax(this.stringEnd - this.stringStart);
    if (this.scratch.length < needed) this.scratch = new Uint8Array(Math.max(needed, this.scratch.length * 2));
    return huffmanDecode(this.block, this.stringStart, this.stringEnd, this.scratch);
  }

  private stringEquals(expected: Uint8Array): boolean {
    let bytes = this.block;
    let start = this.stringStart;
    if (this.stringHuffman) {
      if (this.decodeStringIntoScratch() !== expected.length) return false;
      bytes = this.scratch;
      start = 0;
    }
    for (let i = 0; i < expected.length; i++) if (bytes[start + i] !== expected[i]) return false;
    return true;
  }

  private indexExists(index: number): boolean {
    return index <= staticEntryCount + this.entryCount;
  }

  private indexIsAuthority(index: number): boolean {
    if (index <= staticEntryCount) return index === staticAuthorityIndex;
    return this.entryIsAuthority[this.slotOf(index)] === 1;
  }

  private indexNameBytes(index: number): number {
    if (index <= staticEntryCount) return (staticNames[index - 1] as string).length;
    return this.entryNameBytes[this.slotOf(index)] as number;
  }

  /** The ring slot of a dynamic index (staticEntryCount + 1 is the newest entry). */
  private slotOf(index: number): number {
    const age = index - staticEntryCount - 1;
    return (this.oldest + this.entryCount - 1 - age) % this.entryBytes.length;
  }

  private addEntry(bytes: number, nameBytes: number, isAuthority: boolean): void {
    // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
    this.evictUntil(this.tableBytesMax - bytes);
    if (bytes > this.tableBytesMax) return;
    const slot = (this.oldest + this.entryCount) % this.entryBytes.length;
    this.entryBytes[slot] = bytes;
    this.entryNameBytes[slot] = nameBytes;
    this.entryIsAuthority[slot] = isAuthority ? 1 : 0;
    this.entryCount++;
    this.tableBytes += bytes;
  }

  private resizeTable(bytesMax: number): void {
    this.tableBytesMax = bytesMax;
    this.evictUntil(bytesMax);
    const slotsNeeded = Math.floor(bytesMax / entryOverheadBytes) + 1;
    if (slotsNeeded > this.entryBytes.length) this.growRing(slotsNeeded);
  }

  private evictUntil(bytesMax: number): void {
    while (this.entryCount > 0 && this.tableBytes > Math.max(bytesMax, 0)) {
      this.tableBytes -= this.entryBytes[this.oldest] as number;
      this.oldest = (this.oldest + 1) % this.entryBytes.length;
      this.entryCount--;
    }
  }

  private growRing(slots: number): void {
    const entryBytes = new Int32Array(slots);
    const entryNameBytes = new Int32Array(slots);
    const entryIsAuthority = new Uint8Array(slots);
    for (let i = 0; i < this.entryCount; i++) {
      const slot = (this.oldest + i) % this.entryBytes.length;
      entryBytes[i] = this.entryBytes[slot] as number;
      entryNameBytes[i] = this.entryNameBytes[slot] as number;
      entryIsAuthority[i] = this.entryIsAuthority[slot] as number;
    }
    this.entryBytes = entryBytes;
    this.entryNameBytes = entryNameBytes;
    this.entryIsAuthority = entryIsAuthority;
    this.oldest = 0;
  }
}

/** Bytes an HPACK integer takes with the given prefix. */
function integerBytes(value: number, prefixBits: number): number {
  const prefixMax = (1 << prefixBits) - 1;
  if (value < prefixMax) return 1;
  let bytes = 2;
  for (let rest = value - prefixMax; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes++;
  return bytes;
}

/** Writes an HPACK integer at offset (first byte's high bits from `pattern`); returns the offset after it. */
export function writeInteger(output: Uint8Array, offset: number, value: number, prefixBits: number, pattern: number): number {
  const prefixMax = (1 << prefixBits) - 1;
  if (value < prefixMax) {
    output[offset++] = pattern | value;
    return offset;
  }
  output[offset++] = pattern | prefixMax;
  let rest = value - prefixMax;
  while (rest >= 0x80) {
    output[offset++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  output[offset++] = rest;
  return offset;
}
