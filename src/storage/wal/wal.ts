// The write-ahead log: what makes a write durable. Records (record.ts) go to
// segment files `<seq:016x>-<first index:016x>.wal` in one directory. A save
// appends all its records with one write and, when asked, one fdatasync, so a
// caller batching many client writes into one save pays one sync (group
// commit). Segments are cut at `segmentBytesMax`.
//
// Each segment is written in place ahead of a zero-filled stretch
// (`preallocationBytes`, etcd preallocates its segments for the same reason):
// an fdatasync then flushes data only, not a new file size, which on ext4 is a
// journal commit shared with every other process syncing (measured: 3
// processes appending 300 B + fdatasync each, p50 0.56-0.63 ms growing the
// file, 0.40-0.58 ms inside zeros). An all-zero record header is the end of a
// segment's records, so the zeros read as a clean end; a segment cut or
// closed is truncated to its records.
//
// On open every record is checked. A torn tail of the LAST segment (a record
// cut short, a zeroed or garbage tail, a bad final record) is what a crash
// mid-write leaves: it is repaired by truncating to the last whole record,
// keeping the damaged file as `<name>.broken`. Damage anywhere else means the
// disk lost acknowledged data: opening refuses with WalCorruptError.
import { assert } from "../../errors.ts";
import type { FileHandle, FileSystem } from "../../ports.ts";
import type { CrashPoints } from "../crash-points.ts";
import type { Entry, HardState } from "../../raft/types.ts";
import {
  crcPayload,
  decodeEntry,
  decodeHardState,
  decodeRecord,
  decodeSnapshot,
  encodeRecordInto,
  entryPayload,
  hardStatePayload,
  recordCrc,
  recordHeaderBytes,
  RecordType,
  recordSize,
  snapshotPayload,
  storedCrcAndEnd,
  type DecodedRecord,
} from "./record.ts";

/** Zeros written past a segment's records at a time, so appends land inside the file. */
export const preallocationBytes = 1024 * 1024;
const zeros = new Uint8Array(preallocationBytes);

/** etcd's segment size. */
export const segmentBytesMaxDefault = 64 * 1024 * 1024;

export class WalCorruptError extends Error {
  constructor(file: string, offset: number, reason: string) {
    super(`wal: corrupt record in ${file} at offset ${offset}: ${reason}; refusing to start (restore this member from a snapshot or replace it)`);
    this.name = "WalCorruptError";
  }
}

/** Named places on the write path where fault-injection tests stop the process (see ../crash-points.ts). */
export type { CrashPoints } from "../crash-points.ts";

export interface WalOptions {
  segmentBytesMax?: number;
  /**
   * etcd's --max-wals: segment files kept on disk, counting the ones replay
   * still needs; the oldest released ones (wholly before a snapshot) are
   * deleted beyond it, never one replay needs. 0 keeps every file. Left out:
   * released segments are deleted at once (only what replay needs is kept).
   */
  segmentFilesMax?: number;
  crashPoints?: CrashPoints;
  /** Each save's fdatasync took `seconds` (etcd_disk_wal_fsync_duration_seconds). */
  observeFsync?: (seconds: number) => void;
  /** Bytes appended to the log (etcd_disk_wal_write_bytes_total). */
  countWritten?: (bytes: number) => void;
}

export interface OpenedWal {
  wal: Wal;
  metadata: Uint8Array;
  hardState: HardState | undefined;
  /** Entries after the snapshot, later writes of an index replacing earlier ones. */
  entries: Entry[];
  snapshot: { index: number; term: number } | undefined;
  /** Set when a torn tail was repaired: the path of the kept damaged copy. */
  repairedFrom: string | undefined;
}

interface Segment {
  name: string;
  sequence: number;
  firstIndex: number;
}

const segmentName = (sequence: number, firstIndex: number) =>
  `${sequence.toString(16).padStart(16, "0")}-${firstIndex.toString(16).padStart(16, "0")}.wal`;

function parseSegmentName(name: string): Segment | undefined {
  const match = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  if (match === null) return undefined;
  return { name, sequence: parseInt(match[1] as string, 16), firstIndex: parseInt(match[2] as string, 16) };
}

export class Wal {
  private crc: number;
  /** Where the next record goes: the end of the records written. */
  private size: number;
  /** The file's length: the records, then zeros up to here. */
  private allocated: number;
  private lastIndex: number;
  private hardState: HardState | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly segmentBytesMax: number;

  private constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly metadata: Uint8Array,
    private readonly segments: Segment[],
    private file: FileHandle,
    state: { crc: number; size: number; lastIndex: number; hardState: HardState | undefined },
    private readonly options: WalOptions,
  ) {
    this.crc = state.crc;
    this.size = state.size;
    this.allocated = state.size;
    this.lastIndex = state.lastIndex;
    this.hardState = state.hardState;
    this.segmentBytesMax = options.segmentBytesMax ?? segmentBytesMaxDefault;
  }

  /** Creates a new log in `dir` (which must not hold one) with the caller's metadata. */
  static async create(fs: FileSystem, dir: string, metadata: Uint8Array, options: WalOptions = {}): Promise<Wal> {
    await fs.mkdirp(dir);
    assert((await fs.list(dir)).every((name) => parseSegmentName(name) === undefined), "WAL directory holds no segments");
    const segment = { name: segmentName(0, 0), sequence: 0, firstIndex: 0 };
    const { file, crc, size } = await writeSegmentStart(fs, dir, segment.name, 0, metadata, undefined);
    return new Wal(fs, dir, metadata, [segment], file, { crc, size, lastIndex: 0, hardState: undefined }, options);
  }

  static async open(fs: FileSystem, dir: string, options: WalOptions = {}): Promise<OpenedWal> {
    const segments = (await fs.list(dir)).map(parseSegmentName).filter((s): s is Segment => s !== undefined);
    if (segments.length === 0) throw new Error(`wal: no segments in ${dir}`);
    segments.sort((a, b) => a.sequence - b.sequence);
    let crc = 0;
    let metadata: Uint8Array | undefined;
    let hardState: HardState | undefined;
    let snapshot: { index: number; term: number } | undefined;
    let entries: Entry[] = [];
    let repairedFrom: string | undefined;
    let lastSize = 0;
    for (const [position, segment] of segments.entries()) {
      const path = fs.join(dir, segment.name);
      const bytes = await fs.readFile(path);
      const isLast = position === segments.length - 1;
      // Each segment opens with a CRC record carrying the chain's seed. For the
      // oldest segment kept (older ones released), that record starts the chain;
      // for the others it must continue it.
      const seed = chainSeed(bytes);
      if (position === 0 && seed !== undefined) crc = seed;
      else if (seed !== crc) throw new WalCorruptError(path, 0, "segment does not continue the checksum chain");
      let offset = 0;
      for (;;) {
        const result = decodeRecord(bytes, offset, crc);
        if (result.kind === "end") break;
        if (result.kind === "damaged") {
          if (!isLast || followedByValidRecord(bytes, offset, crc)) throw new WalCorruptError(path, offset, result.reason);
          repairedFrom = await repairTail(fs, dir, path, bytes, offset);
          break;
        }
        const record: DecodedRecord = result.record;
        crc = record.crc;
        offset = record.end;
        switch (record.type) {
          case RecordType.Crc:
            // Written with the chain seed it carries; nothing more to check.
            break;
          case RecordType.Metadata:
            if (metadata !== undefined && !equalBytes(metadata, record.payload)) {
              throw new WalCorruptError(path, offset, "metadata differs between segments");
            }
            metadata = record.payload.slice();
            break;
          case RecordType.HardState:
            hardState = decodeHardState(record.payload);
            break;
          case RecordType.Snapshot:
            snapshot = decodeSnapshot(record.payload);
            entries = entries.filter((entry) => entry.index > (snapshot?.index ?? 0));
            break;
          case RecordType.Entry: {
            const entry = decodeEntry(record.payload);
            // A leader may overwrite a suffix of the log: the later write wins.
            while (entries.length > 0 && (entries[entries.length - 1] as Entry).index >= entry.index) entries.pop();
            const previous = entries[entries.length - 1];
            const expected = previous === undefined ? undefined : previous.index + 1;
            if (expected !== undefined && entry.index !== expected) {
              throw new WalCorruptError(path, offset, `entry index ${entry.index} does not follow ${previous?.index}`);
            }
            if (snapshot === undefined || entry.index > snapshot.index) entries.push(entry);
            break;
          }
        }
      }
      if (isLast) lastSize = offset;
    }
    if (metadata === undefined) throw new Error(`wal: no metadata record in ${dir}`);
    const last = segments[segments.length - 1] as Segment;
    const file = await fs.open(fs.join(dir, last.name), "readwrite");
    // Anything past the last whole record (zeros from a crash) is cut before appending.
    if ((await file.size()) !== lastSize) {
      await file.truncate(lastSize);
      await file.datasync();
    }
    const lastIndex = entries.length > 0 ? (entries[entries.length - 1] as Entry).index : (snapshot?.index ?? 0);
    const wal = new Wal(fs, dir, metadata, segments, file, { crc, size: lastSize, lastIndex, hardState }, options);
    // A lower --max-wals than the last run's applies now, as etcd's purge loop
    // does at start. The snapshot record is written only once its data is
    // durable, so nothing before it is needed for replay.
    if (snapshot !== undefined && options.segmentFilesMax !== undefined) await wal.releaseTo(snapshot.index);
    return { wal, metadata, hardState, entries, snapshot, repairedFrom };
  }

  /**
   * Appends the hard state (if given) and entries. Resolves once they are
   * written and, if `sync`, fdatasynced. The Raft core asks for the sync when
   * entries, the term or the vote change (etcd's MustSync); a hard state that
   * moves only the commit index is written and left to the next sync, as etcd
   * does: a restart that finds an older commit index learns it again from the
   * leader, and takes what its backend applied as committed. Calls run one
   * after another in call order.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[], options: { sync: boolean }): Promise<void> {
    const run = this.queue.then(() => this.saveNow(hardState, entries, options.sync));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Records a snapshot at (index, term): on open, entries at or before it are skipped. */
  saveSnapshot(snapshot: { index: number; term: number }): Promise<void> {
    const run = this.queue.then(async () => {
      await this.appendRecords([[RecordType.Snapshot, snapshotPayload(snapshot)]]);
      await this.file.datasync();
      this.lastIndex = Math.max(this.lastIndex, snapshot.index);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Marks segments whose entries all precede `index` (already in a snapshot)
   * as no longer needed, and deletes the oldest of them while more than
   * `segmentFilesMax` segment files exist (etcd's purge of released WAL files).
   */
  async releaseTo(index: number): Promise<void> {
    // A segment is released when the next one starts at or before the snapshot:
    // every entry it holds is in the snapshot. The last segment never is.
    let released = 0;
    while (released + 1 < this.segments.length && (this.segments[released + 1] as Segment).firstIndex <= index) released++;
    const filesMax = this.options.segmentFilesMax ?? 1;
    const excess = filesMax === 0 ? 0 : Math.min(released, this.segments.length - filesMax);
    if (excess <= 0) return;
    for (const segment of this.segments.splice(0, excess)) await this.fs.remove(this.fs.join(this.dir, segment.name));
    await this.fs.syncDir(this.dir);
  }

  /** Segment file names, oldest first (for tests and diagnostics). */
  segmentFileNames(): string[] {
    return this.segments.map((segment) => segment.name);
  }

  async close(): Promise<void> {
    await this.queue;
    await this.dropZeros();
    await this.file.close();
  }

  private async saveNow(hardState: HardState | undefined, entries: readonly Entry[], sync: boolean): Promise<void> {
    this.options.crashPoints?.hit("wal-before-save");
    const records: Array<[RecordType, Uint8Array]> = [];
    let previous = this.lastIndex;
    for (const entry of entries) {
      // Pair check before the disk: indexes are consecutive, or rewrite a suffix.
      assert(entry.index >= 1 && entry.index <= previous + 1, `entry index ${entry.index} follows ${previous}`);
      previous = entry.index;
      records.push([RecordType.Entry, entryPayload(entry)]);
    }
    const hardStateChanged = hardState !== undefined && !sameHardState(hardState, this.hardState);
    if (hardStateChanged) records.push([RecordType.HardState, hardStatePayload(hardState)]);
    if (records.length === 0) return;
    await this.appendRecords(records);
    if (entries.length > 0) this.lastIndex = (entries[entries.length - 1] as Entry).index;
    if (hardStateChanged) this.hardState = { ...hardState };
    this.options.crashPoints?.hit("wal-after-write-before-sync");
    if (sync) {
      const startedMs = performance.now();
      await this.file.datasync();
      this.options.observeFsync?.((performance.now() - startedMs) / 1000);
    }
    this.options.crashPoints?.hit("wal-after-sync");
    if (this.size >= this.segmentBytesMax) await this.cut();
  }

  private async appendRecords(records: Array<[RecordType, Uint8Array]>): Promise<void> {
    const buffer = new Uint8Array(records.reduce((sum, [, payload]) => sum + recordSize(payload.length), 0));
    let offset = 0;
    let crc = this.crc;
    for (const [type, payload] of records) ({ crc, end: offset } = encodeRecordInto(buffer, offset, crc, type, payload));
    if (this.size + buffer.length > this.allocated) await this.preallocate(this.size + buffer.length);
    await this.file.writeAt(buffer, this.size);
    this.crc = crc;
    this.size += buffer.length;
    this.options.countWritten?.(buffer.length);
  }

  /** Writes zeros from the file's end to past `end`, in whole stretches; they reach the disk with the next fdatasync. */
  private async preallocate(end: number): Promise<void> {
    while (this.allocated < end) {
      await this.file.writeAt(zeros, this.allocated);
      this.allocated += zeros.length;
    }
  }

  /** Cuts the zeros after the records (a segment that takes no more). Not synced: zeros left by a crash read as the end. */
  private async dropZeros(): Promise<void> {
    if (this.allocated === this.size) return;
    await this.file.truncate(this.size);
    this.allocated = this.size;
  }

  /** Starts the next segment: written and synced under a temporary name, then renamed into place. */
  private async cut(): Promise<void> {
    const last = this.segments[this.segments.length - 1] as Segment;
    const segment = { name: segmentName(last.sequence + 1, this.lastIndex + 1), sequence: last.sequence + 1, firstIndex: this.lastIndex + 1 };
    const { file, crc, size } = await writeSegmentStart(this.fs, this.dir, segment.name, this.crc, this.metadata, this.hardState);
    await this.dropZeros();
    await this.file.close();
    this.file = file;
    this.crc = crc;
    this.size = size;
    this.allocated = size;
    this.segments.push(segment);
  }
}

async function writeSegmentStart(
  fs: FileSystem,
  dir: string,
  name: string,
  seed: number,
  metadata: Uint8Array,
  hardState: HardState | undefined,
): Promise<{ file: FileHandle; crc: number; size: number }> {
  const records: Array<[RecordType, Uint8Array]> = [
    [RecordType.Crc, crcPayload(seed)],
    [RecordType.Metadata, metadata],
  ];
  if (hardState !== undefined) records.push([RecordType.HardState, hardStatePayload(hardState)]);
  const buffer = new Uint8Array(records.reduce((sum, [, payload]) => sum + recordSize(payload.length), 0));
  let offset = 0;
  let crc = seed;
  for (const [type, payload] of records) ({ crc, end: offset } = encodeRecordInto(buffer, offset, crc, type, payload));
  const temporary = fs.join(dir, `${name}.tmp`);
  const staging = await fs.open(temporary, "readwrite");
  await staging.truncate(0);
  await staging.writeAt(buffer, 0);
  await staging.datasync();
  await staging.close();
  const path = fs.join(dir, name);
  await fs.rename(temporary, path);
  await fs.syncDir(dir);
  const file = await fs.open(path, "readwrite");
  return { file, crc, size: buffer.length };
}

/** The seed carried by a segment's leading CRC record, if it has one. */
function chainSeed(bytes: Uint8Array): number | undefined {
  if (bytes.length < recordHeaderBytes + 8 || bytes[8] !== RecordType.Crc) return undefined;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(recordHeaderBytes, true));
}

/**
 * Whether valid records follow a damaged one anywhere after it: then the
 * damage is in the middle of the log, never a torn tail to cut off. Records
 * are 8-byte aligned, so every aligned offset after the damage is tried: a
 * record there counts if it continues the chain from the damaged record (by
 * that record's stored CRC, or by the CRC its contents should have had, when
 * the stored one was hit) or if the record after it checks against its
 * stored CRC (two chained records are no accident). As etcd does, a damaged
 * stretch holding a whole zeroed sector is still a torn write (a sector that
 * never reached the disk), whatever follows it.
 */
function followedByValidRecord(bytes: Uint8Array, offset: number, seed: number): boolean {
  const seeds: number[] = [];
  if (offset + recordHeaderBytes <= bytes.length) seeds.push(crcField(bytes, offset));
  const damaged = storedCrcAndEnd(bytes, offset);
  if (damaged !== undefined && (bytes[offset + 8] as number) in RecordType) {
    const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
    seeds.push(recordCrc(seed, bytes[offset + 8] as RecordType, bytes.subarray(offset + recordHeaderBytes, offset + recordHeaderBytes + length)));
  }
  for (let at = offset + recordAlignment; at + recordHeaderBytes <= bytes.length; at += recordAlignment) {
    const candidate = storedCrcAndEnd(bytes, at);
    if (candidate === undefined) continue;
    const chained =
      seeds.some((crc) => decodeRecord(bytes, at, crc).kind === "record") ||
      (candidate.end < bytes.length && decodeRecord(bytes, candidate.end, candidate.crc).kind === "record");
    if (chained) return !zeroedSectorBetween(bytes, offset, at);
  }
  return false;
}

const recordAlignment = 8;
const sectorBytes = 512;

function crcField(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset + 4, true);
}

/**
 * Whether a whole, aligned sector ending before `to` and holding the damage at
 * `from` or after it holds only zeros. The sector holding `from` counts too: its
 * bytes before `from` end the last whole record, and when they are zeros as well
 * (data ending in zeros) the whole sector never reached the disk. (D3 of test:long, seed 10:
 * a lost sector starting 8 zero bytes before the damaged record was refused.)
 */
function zeroedSectorBetween(bytes: Uint8Array, from: number, to: number): boolean {
  for (let sector = Math.floor(from / sectorBytes) * sectorBytes; sector + sectorBytes <= to; sector += sectorBytes) {
    let zero = true;
    for (let i = sector; i < sector + sectorBytes && zero; i++) zero = bytes[i] === 0;
    if (zero) return true;
  }
  return false;
}

async function repairTail(fs: FileSystem, dir: string, path: string, bytes: Uint8Array, goodLength: number): Promise<string> {
  const brokenPath = `${path}.broken`;
  const copy = await fs.open(brokenPath, "readwrite");
  await copy.truncate(0);
  await copy.writeAt(bytes, 0);
  await copy.datasync();
  await copy.close();
  const file = await fs.open(path, "readwrite");
  await file.truncate(goodLength);
  await file.datasync();
  await file.close();
  await fs.syncDir(dir);
  return brokenPath;
}

function sameHardState(a: HardState, b: HardState | undefined): boolean {
  return b !== undefined && a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
