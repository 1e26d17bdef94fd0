// bbolt's file layout (etcd's backend), written and read, so a snapshot moves
// between etcd and edgetcd: `etcdctl snapshot status/restore` open what
// Maintenance.Snapshot streams, and `edgetcd snapshot` opens etcd's.
//
// The format (bbolt 1.3, format version 2, little-endian as on amd64):
// - pages of `pageSize` bytes; each starts with a 16-byte header: id u64,
//   flags u16 (branch 0x01, leaf 0x02, meta 0x04, freelist 0x10), count u16,
//   overflow u32 (pages after this one that belong to it);
// - pages 0 and 1: meta (magic, version, page size, flags, the root bucket
//   {root page u64, sequence u64}, freelist page, high-water page id, txid,
//   FNV-1a 64 of the 56 bytes before it); the valid one with the higher txid
//   is current;
// - a leaf page holds `count` 16-byte elements (flags u32: 0x01 for a
//   bucket, pos u32 from the element to its key, key size u32, value size
//   u32), then keys and values; a branch page holds 16-byte elements (pos
//   u32, key size u32, child page u64);
// - a bucket's value is its header {root page u64, sequence u64}, followed by
//   the bucket's one leaf page when root is 0 (an inline bucket).
//
// The writer lays a compact file out in one pass: metas, an empty freelist,
// then every bucket's tree, leaves first, with no free page (bbolt's tx.Check
// then finds every page reachable). It keeps every bucket out of line, which
// bbolt reads as well as inline ones.

const magic = 0xed0cdaed;
const formatVersion = 2;
const pageHeaderBytes = 16;
const elementBytes = 16;
const metaBytes = 64;
const metaChecksummedBytes = 56;
const bucketHeaderBytes = 16;
const countMax = 0xffff;

const flags = { branch: 0x01, leaf: 0x02, meta: 0x04, freelist: 0x10 } as const;
const bucketLeafFlag = 0x01;

export const bboltPageBytes = 4096;

export interface BoltBucket {
  name: Uint8Array;
  /** Its entries, in ascending byte order of their keys. */
  entries: Iterable<readonly [Uint8Array, Uint8Array]>;
}

/** The file is not a bbolt database, or is damaged. */
export class BboltFormatError extends Error {
  constructor(detail: string) {
    super(`bbolt: ${detail}`);
    this.name = "BboltFormatError";
  }
}

// --- writing -----------------------------------------------------------------

interface Element {
  key: Uint8Array;
  value: Uint8Array;
  flags: number;
}

/** Pages in file order from page 3 on; the writer hands out ids as it goes. */
class PageWriter {
  /** Pages written since the last flush (all of them without a sink). */
  pages: Uint8Array[] = [];
  private nextId = 3;

  constructor(
    readonly pageSize: number,
    private readonly sink: ((pages: Uint8Array[]) => Promise<void>) | undefined,
  ) {}

  /** Hands the pages written so far to the sink, if there is one. */
  async flush(): Promise<void> {
    if (this.sink === undefined || this.pages.length === 0) return;
    const pages = this.pages;
    this.pages = [];
    await this.sink(pages);
  }

  get highWater(): number {
    return this.nextId;
  }

  /** A page (with overflow pages when `bytes` exceeds one) of `bytes`; returns it and its id. */
  allocate(bytes: number): { id: number; page: Uint8Array } {
    const count = Math.max(1, Math.ceil(bytes / this.pageSize));
    const page = new Uint8Array(count * this.pageSize);
    const id = this.nextId;
    this.nextId += count;
    const view = new DataView(page.buffer);
    view.setBigUint64(0, BigInt(id), true);
    view.setUint32(12, count - 1, true);
    this.pages.push(page);
    return { id, page };
  }
}

/** Byte-wise order, bbolt's key order. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** Groups items into nodes that fit one page each (one item alone may overflow it). */
function* packed<T>(items: Iterable<T>, pageSize: number, sizeOf: (item: T) => number): Generator<T[]> {
  let node: T[] = [];
  let bytes = pageHeaderBytes;
  for (const item of items) {
    const size = elementBytes + sizeOf(item);
    if (node.length > 0 && (bytes + size > pageSize || node.length === countMax)) {
      yield node;
      node = [];
      bytes = pageHeaderBytes;
    }
    node.push(item);
    bytes += size;
  }
  if (node.length > 0) yield node;
}

function writeLeaf(writer: PageWriter, node: Element[]): number {
  const bytes = pageHeaderBytes + node.reduce((sum, element) => sum + elementBytes + element.key.length + element.value.length, 0);
  const { id, page } = writer.allocate(bytes);
  const view = new DataView(page.buffer);
  view.setUint16(8, flags.leaf, true);
  view.setUint16(10, node.length, true);
  let data = pageHeaderBytes + node.length * elementBytes;
  node.forEach((element, index) => {
    const at = pageHeaderBytes + index * elementBytes;
    view.setUint32(at, element.flags, true);
    view.setUint32(at + 4, data - at, true);
    view.setUint32(at + 8, element.key.length, true);
    view.setUint32(at + 12, element.value.length, true);
    page.set(element.key, data);
    page.set(element.value, data + element.key.length);
    data += element.key.length + element.value.length;
  });
  return id;
}

function writeBranch(writer: PageWriter, children: Array<{ key: Uint8Array; id: number }>): number {
  const bytes = pageHeaderBytes + children.reduce((sum, child) => sum + elementBytes + child.key.length, 0);
  const { id, page } = writer.allocate(bytes);
  const view = new DataView(page.buffer);
  view.setUint16(8, flags.branch, true);
  view.setUint16(10, children.length, true);
  let data = pageHeaderBytes + children.length * elementBytes;
  children.forEach((child, index) => {
    const at = pageHeaderBytes + index * elementBytes;
    view.setUint32(at, data - at, true);
    view.setUint32(at + 4, child.key.length, true);
    view.setBigUint64(at + 8, BigInt(child.id), true);
    page.set(child.key, data);
    data += child.key.length;
  });
  return id;
}

/** Leaf pages written between two pauses: about 256 KiB of work. */
const pagesPerPause = 64;

/**
 * Writes one B+tree of `elements` (ascending keys); returns its root page id.
 * Awaits `pause` every few pages, so a large bucket does not hold the event
 * loop for the whole write.
 */
async function writeTree(writer: PageWriter, elements: Iterable<Element>, pause: () => Promise<void>): Promise<number> {
  let level: Array<{ key: Uint8Array; id: number }> = [];
  let previous: Uint8Array | undefined;
  const checked = function* (): Generator<Element> {
    for (const element of elements) {
      if (previous !== undefined && compareBytes(previous, element.key) >= 0) throw new Error("bbolt: keys must be written in ascending order, once each");
      previous = element.key;
      yield element;
    }
  };
  for (const node of packed(checked(), writer.pageSize, (element) => element.key.length + element.value.length)) {
    level.push({ key: node[0]?.key as Uint8Array, id: writeLeaf(writer, node) });
    if (level.length % pagesPerPause === 0) {
      await writer.flush();
      await pause();
    }
  }
  if (level.length === 0) return writeLeaf(writer, []);
  while (level.length > 1) {
    const next: Array<{ key: Uint8Array; id: number }> = [];
    for (const node of packed(level, writer.pageSize, (child) => child.key.length)) next.push({ key: node[0]?.key as Uint8Array, id: writeBranch(writer, node) });
    level = next;
  }
  return (level[0] as { id: number }).id;
}

function bucketHeader(root: number): Uint8Array {
  const header = new Uint8Array(bucketHeaderBytes);
  new DataView(header.buffer).setBigUint64(0, BigInt(root), true);
  return header;
}

function fnv1a64(bytes: Uint8Array): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  return hash;
}

function writeMeta(page: Uint8Array, pageId: number, fields: { pageSize: number; root: number; highWater: number; txid: number }): void {
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  view.setBigUint64(0, BigInt(pageId), true);
  view.setUint16(8, flags.meta, true);
  const at = pageHeaderBytes;
  view.setUint32(at, magic, true);
  view.setUint32(at + 4, formatVersion, true);
  view.setUint32(at + 8, fields.pageSize, true);
  view.setUint32(at + 12, 0, true);
  view.setBigUint64(at + 16, BigInt(fields.root), true);
  view.setBigUint64(at + 24, 0n, true);
  view.setBigUint64(at + 32, 2n, true);
  view.setBigUint64(at + 40, BigInt(fields.highWater), true);
  view.setBigUint64(at + 48, BigInt(fields.txid), true);
  view.setBigUint64(at + 56, fnv1a64(page.subarray(at, at + metaChecksummedBytes)), true);
}

/**
 * A bbolt database holding `buckets` (each a top-level bucket), as the pages
 * of one file in order. Bucket names must be distinct; they are sorted here.
 * `pause` is awaited every few pages (a caller on an event loop yields there).
 * With a `sink`, the pages from page 3 on are handed to it in order as they
 * are written, a few at a time, and only the first three (metas and
 * freelist, known last, for the caller to put at the start) are returned.
 */
export async function writeBbolt(
  buckets: BoltBucket[],
  options: { pageSize?: number; pause?: () => Promise<void>; sink?: (pages: Uint8Array[]) => Promise<void> } = {},
): Promise<Uint8Array[]> {
  const pageSize = options.pageSize ?? bboltPageBytes;
  const pause = options.pause ?? (() => Promise.resolve());
  const writer = new PageWriter(pageSize, options.sink);
  const sorted = [...buckets].sort((a, b) => compareBytes(a.name, b.name));
  const roots: Element[] = [];
  for (const bucket of sorted) {
    const entries = (function* (): Generator<Element> {
      for (const [key, value] of bucket.entries) yield { key, value, flags: 0 };
    })();
    roots.push({ key: bucket.name, value: bucketHeader(await writeTree(writer, entries, pause)), flags: bucketLeafFlag });
  }
  const root = await writeTree(writer, roots, pause);
  await writer.flush();
  const head = new Uint8Array(3 * pageSize);
  for (const pageId of [0, 1]) writeMeta(head.subarray(pageId * pageSize, (pageId + 1) * pageSize), pageId, { pageSize, root, highWater: writer.highWater, txid: pageId + 2 });
  const freelist = new DataView(head.buffer, 2 * pageSize, pageSize);
  freelist.setBigUint64(0, 2n, true);
  freelist.setUint16(8, flags.freelist, true);
  return [head, ...writer.pages];
}

// --- reading -----------------------------------------------------------------

/** Whether `head` (a file's first bytes, 24 or more) starts a bbolt file: its first meta page's magic and version. */
export function startsBbolt(head: Uint8Array): boolean {
  if (head.length < pageHeaderBytes + 8) return false;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return view.getUint32(pageHeaderBytes, true) === magic && view.getUint32(pageHeaderBytes + 4, true) === formatVersion;
}

/** Deeper than any tree bbolt writes (a handful of levels): refused rather than recursed into. */
const depthMax = 64;

interface Meta {
  pageSize: number;
  root: number;
  highWater: number;
  txid: bigint;
}

function readMeta(file: Uint8Array, offset: number): Meta | undefined {
  if (offset + pageHeaderBytes + metaBytes > file.length) return undefined;
  const view = new DataView(file.buffer, file.byteOffset + offset, pageHeaderBytes + metaBytes);
  const at = pageHeaderBytes;
  if (view.getUint32(at, true) !== magic || view.getUint32(at + 4, true) !== formatVersion) return undefined;
  const sum = fnv1a64(file.subarray(offset + at, offset + at + metaChecksummedBytes));
  if (view.getBigUint64(at + 56, true) !== sum) return undefined;
  return {
    pageSize: view.getUint32(at + 8, true),
    root: Number(view.getBigUint64(at + 16, true)),
    highWater: Number(view.getBigUint64(at + 40, true)),
    txid: view.getBigUint64(at + 48, true),
  };
}

/**
 * The top-level buckets of a bbolt file and their entries (nested buckets are
 * refused: etcd has none). Every offset is checked against the file: a
 * damaged or hostile file is a BboltFormatError, never a crash or a loop.
 */
export function readBbolt(file: Uint8Array): Map<string, Array<[Uint8Array, Uint8Array]>> {
  const first = readMeta(file, 0);
  const second = readMeta(file, first?.pageSize ?? bboltPageBytes);
  const meta = first === undefined || (second !== undefined && second.txid > first.txid) ? second : first;
  if (meta === undefined) throw new BboltFormatError("no valid meta page (not a bbolt file, or damaged)");
  const { pageSize } = meta;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new BboltFormatError(`page size ${pageSize} is not one bbolt writes`);
  const pageCount = Math.min(meta.highWater, Math.floor(file.length / pageSize));

  // bbolt never shares a page between two places: one seen twice is damage
  // (and walking it again could make a small file cost exponential time).
  const seen = new Set<number>();
  const pageAt = (id: number): { view: DataView; bytes: Uint8Array } => {
    if (!Number.isSafeInteger(id) || id < 2 || id >= pageCount) throw new BboltFormatError(`page ${id} is outside the file's data pages (${pageCount} pages)`);
    if (seen.has(id)) throw new BboltFormatError(`page ${id} is reached twice`);
    seen.add(id);
    const header = new DataView(file.buffer, file.byteOffset + id * pageSize, pageHeaderBytes);
    const span = (header.getUint32(12, true) + 1) * pageSize;
    if (id * pageSize + span > file.length) throw new BboltFormatError(`page ${id} overflows past the end of the file`);
    const bytes = file.subarray(id * pageSize, id * pageSize + span);
    return { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes };
  };

  const slice = (bytes: Uint8Array, from: number, length: number, what: string): Uint8Array => {
    if (from < 0 || from + length > bytes.length) throw new BboltFormatError(`${what} runs past its page`);
    return bytes.subarray(from, from + length);
  };

  /** Calls `visit` for every leaf element of the tree at `root`, in order. */
  const walk = (page: { view: DataView; bytes: Uint8Array }, depth: number, visit: (flags: number, key: Uint8Array, value: Uint8Array) => void): void => {
    if (depth > depthMax) throw new BboltFormatError("tree too deep");
    const { view, bytes } = page;
    const pageFlags = view.getUint16(8, true);
    const count = view.getUint16(10, true);
    if (pageHeaderBytes + count * elementBytes > bytes.length) throw new BboltFormatError("element table runs past its page");
    for (let index = 0; index < count; index++) {
      const at = pageHeaderBytes + index * elementBytes;
      if (pageFlags & flags.leaf) {
        const key = slice(bytes, at + view.getUint32(at + 4, true), view.getUint32(at + 8, true), "a key");
        const value = slice(bytes, at + view.getUint32(at + 4, true) + key.length, view.getUint32(at + 12, true), "a value");
        visit(view.getUint32(at, true), key, value);
      } else if (pageFlags & flags.branch) {
        walk(pageAt(Number(view.getBigUint64(at + 8, true))), depth + 1, visit);
      } else {
        throw new BboltFormatError(`page of type 0x${pageFlags.toString(16)} inside a tree`);
      }
    }
  };

  const decoder = new TextDecoder();
  const buckets = new Map<string, Array<[Uint8Array, Uint8Array]>>();
  walk(pageAt(meta.root), 0, (elementFlags, name, value) => {
    if (!(elementFlags & bucketLeafFlag)) throw new BboltFormatError("a key outside any bucket");
    if (value.length < bucketHeaderBytes) throw new BboltFormatError("bucket header is short");
    const root = Number(new DataView(value.buffer, value.byteOffset, bucketHeaderBytes).getBigUint64(0, true));
    const inline = value.subarray(bucketHeaderBytes);
    const page = root === 0 ? { view: new DataView(inline.buffer, inline.byteOffset, inline.byteLength), bytes: inline } : pageAt(root);
    if (page.bytes.length < pageHeaderBytes) throw new BboltFormatError("inline bucket is short");
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    walk(page, 1, (flagsOfEntry, key, entryValue) => {
      if (flagsOfEntry & bucketLeafFlag) throw new BboltFormatError(`nested bucket in ${decoder.decode(name)} (etcd writes none)`);
      entries.push([key, entryValue]);
    });
    buckets.set(decoder.decode(name), entries);
  });
  return buckets;
}
