// The WAL: round trips, segment cuts, group commit, torn-tail repair at every
// byte offset, and refusal to start on damage that is not a torn tail.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FileHandle, FileSystem } from "../../src/ports.ts";
import { EntryType, type Entry } from "../../src/raft/types.ts";
import { Wal, WalCorruptError } from "../../src/storage/wal/wal.ts";
import { testRuntime } from "../support/runtime.ts";
import { recordEnds } from "../reliability/disk-scenarios.ts";

const { fs } = await testRuntime();
const root = mkdtempSync(join(tmpdir(), "edgetcd-wal-"));
after(() => fs.removeAll(root));
let counter = 0;
const freshDir = () => join(root, `wal-${counter++}`);

const metadata = new TextEncoder().encode("member-1");
const entry = (index: number, term: number, text = `e${index}`): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: new TextEncoder().encode(text),
});
const texts = (entries: Entry[]) => entries.map((e) => `${e.index}/${e.term}:${new TextDecoder().decode(e.data)}`);

async function segmentsOf(dir: string): Promise<string[]> {
  return (await fs.list(dir)).filter((name) => name.endsWith(".wal"));
}

async function writeLog(dir: string, count: number, options = {}): Promise<void> {
  const wal = await Wal.create(fs, dir, metadata, options);
  for (let index = 1; index <= count; index++) {
    await wal.save({ term: 1, vote: 1, commit: index }, [entry(index, 1)], { sync: true });
  }
  await wal.close();
}

/** A FileSystem whose files count their datasync calls. */
function countingFs(inner: FileSystem): { fs: FileSystem; syncs: () => number } {
  let syncs = 0;
  const wrap = (file: FileHandle): FileHandle => ({
    append: (data) => file.append(data),
    writeAt: (data, position) => file.writeAt(data, position),
    readAt: (position, length) => file.readAt(position, length),
    size: () => file.size(),
    datasync: () => {
      syncs++;
      return file.datasync();
    },
    truncate: (size) => file.truncate(size),
    close: () => file.close(),
  });
  return { fs: { ...inner, join: inner.join, open: async (path, mode) => wrap(await inner.open(path, mode)) }, syncs: () => syncs };
}

describe("WAL", () => {
  test("entries and hard state survive close and reopen", async () => {
    const dir = freshDir();
    await writeLog(dir, 5);
    const opened = await Wal.open(fs, dir);
    assert.deepEqual(texts(opened.entries), ["1/1:e1", "2/1:e2", "3/1:e3", "4/1:e4", "5/1:e5"]);
    assert.deepEqual(opened.hardState, { term: 1, vote: 1, commit: 5 });
    assert.deepEqual(opened.metadata, metadata);
    assert.equal(opened.repairedFrom, undefined);
    // Appending after reopen continues the chain.
    await opened.wal.save({ term: 2, vote: 1, commit: 6 }, [entry(6, 2)], { sync: true });
    await opened.wal.close();
    const again = await Wal.open(fs, dir);
    assert.equal(again.entries.length, 6);
    assert.deepEqual(again.hardState, { term: 2, vote: 1, commit: 6 });
    await again.wal.close();
  });

  test("a rewritten suffix replaces the old entries", async () => {
    const dir = freshDir();
    const wal = await Wal.create(fs, dir, metadata);
    await wal.save({ term: 1, vote: 1, commit: 1 }, [entry(1, 1), entry(2, 1), entry(3, 1)], { sync: true });
    await wal.save({ term: 2, vote: 2, commit: 1 }, [entry(2, 2, "new2"), entry(3, 2, "new3")], { sync: true });
    await wal.close();
    const opened = await Wal.open(fs, dir);
    assert.deepEqual(texts(opened.entries), ["1/1:e1", "2/2:new2", "3/2:new3"]);
    await opened.wal.close();
  });

  test("segments are cut at the size limit and read back in order", async () => {
    const dir = freshDir();
    await writeLog(dir, 60, { segmentBytesMax: 512 });
    const segments = await segmentsOf(dir);
    assert.ok(segments.length > 3, `several segments (${segments.length})`);
    const opened = await Wal.open(fs, dir, { segmentBytesMax: 512 });
    assert.deepEqual(
      opened.entries.map((e) => e.index),
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    await opened.wal.close();
  });

  test("a snapshot record hides older entries; releaseTo deletes old segments", async () => {
    const dir = freshDir();
    await writeLog(dir, 40, { segmentBytesMax: 400 });
    let opened = await Wal.open(fs, dir, { segmentBytesMax: 400 });
    await opened.wal.saveSnapshot({ index: 30, term: 1 });
    const before = (await segmentsOf(dir)).length;
    await opened.wal.releaseTo(30);
    assert.ok((await segmentsOf(dir)).length < before, "old segments removed");
    await opened.wal.close();
    opened = await Wal.open(fs, dir);
    assert.deepEqual(opened.snapshot, { index: 30, term: 1 });
    assert.deepEqual(
      opened.entries.map((e) => e.index),
      Array.from({ length: 10 }, (_, i) => i + 31),
    );
    await opened.wal.close();
  });

  test("segmentFilesMax (--max-wals): only released segments go, oldest first, down to the count; 0 keeps all", async () => {
    for (const [filesMax, snapshotIndex] of [[3, 30], [3, 2], [0, 30], [1, 30]] as const) {
      const dir = freshDir();
      await writeLog(dir, 40, { segmentBytesMax: 400 });
      const opened = await Wal.open(fs, dir, { segmentBytesMax: 400, segmentFilesMax: filesMax });
      const before = await segmentsOf(dir);
      await opened.wal.saveSnapshot({ index: snapshotIndex, term: 1 });
      await opened.wal.releaseTo(snapshotIndex);
      const after = await segmentsOf(dir);
      const firstIndexOf = (name: string) => parseInt(name.slice(17, 33), 16);
      // Segments replay needs: the one holding the snapshot's index and every later one.
      const needed = before.filter((name, i) => i === before.length - 1 || firstIndexOf(before[i + 1] as string) > snapshotIndex);
      for (const name of needed) assert.ok(after.includes(name), `${name} (needed) kept with max ${filesMax}`);
      const expected = filesMax === 0 ? before.length : Math.max(needed.length, Math.min(before.length, filesMax));
      assert.equal(after.length, expected, `max ${filesMax}, snapshot ${snapshotIndex}: ${before.length} → ${after.length}`);
      assert.deepEqual(after, before.slice(before.length - after.length), "the oldest go first");
      await opened.wal.close();
      const again = await Wal.open(fs, dir);
      assert.deepEqual(again.snapshot, { index: snapshotIndex, term: 1 });
      assert.equal(again.entries.at(-1)?.index, 40);
      assert.equal(again.entries[0]?.index, snapshotIndex + 1);
      await again.wal.close();
    }
  });

  test("a lower segmentFilesMax at open purges what the last run kept, never what replay needs", async () => {
    const dir = freshDir();
    await writeLog(dir, 40, { segmentBytesMax: 400 });
    let opened = await Wal.open(fs, dir, { segmentBytesMax: 400, segmentFilesMax: 0 });
    await opened.wal.saveSnapshot({ index: 30, term: 1 });
    await opened.wal.releaseTo(30);
    await opened.wal.close();
    const kept = await segmentsOf(dir);
    opened = await Wal.open(fs, dir, { segmentBytesMax: 400, segmentFilesMax: 1 });
    const after = await segmentsOf(dir);
    assert.ok(after.length < kept.length && after.length >= 1, `${kept.length} → ${after.length}`);
    assert.equal(opened.entries[0]?.index, 31);
    assert.equal(opened.entries.at(-1)?.index, 40);
    await opened.wal.close();
    const again = await Wal.open(fs, dir);
    assert.deepEqual(again.entries.map((e) => e.index), Array.from({ length: 10 }, (_, i) => i + 31));
    await again.wal.close();
  });

  test("group commit: one save of many entries pays one fdatasync", async () => {
    const counting = countingFs(fs);
    const dir = freshDir();
    const wal = await Wal.create(counting.fs, dir, metadata);
    const before = counting.syncs();
    const entries = Array.from({ length: 100 }, (_, i) => entry(i + 1, 1));
    await wal.save({ term: 1, vote: 1, commit: 100 }, entries, { sync: true });
    assert.equal(counting.syncs() - before, 1);
    // Without sync and without a hard-state change, nothing is synced.
    await wal.save(undefined, [entry(101, 1)], { sync: false });
    assert.equal(counting.syncs() - before, 1);
    await wal.close();
  });

  test("a log truncated at every byte offset of its last two records reopens to the last whole record", async () => {
    const source = freshDir();
    await writeLog(source, 4);
    const [segment] = await segmentsOf(source);
    const full = await fs.readFile(join(source, segment as string));
    const ends = recordEnds(full); // [end offset, is an entry]
    const entryEnds = ends.filter(([, isEntry]) => isEntry).map(([end]) => end);
    const cutFrom = entryEnds[entryEnds.length - 3] as number; // just after entry 2's record
    for (let length = cutFrom; length < full.length; length++) {
      const dir = freshDir();
      await fs.mkdirp(dir);
      const file = await fs.open(join(dir, segment as string), "readwrite");
      await file.writeAt(full.subarray(0, length), 0);
      await file.close();
      const opened = await Wal.open(fs, dir);
      await opened.wal.close();
      const whole = entryEnds.filter((end) => end <= length).length;
      assert.equal(opened.entries.length, whole, `cut at ${length}`);
      const atBoundary = ends.some(([end]) => end === length);
      assert.equal(opened.repairedFrom !== undefined, !atBoundary, `cut at ${length}: damaged copy kept iff a record was torn`);
      assert.equal(await fs.size(join(dir, segment as string)), Math.max(...ends.map(([end]) => end).filter((end) => end <= length)));
    }
  });

  test("a torn tail keeps the damaged copy; appending after repair works", async () => {
    const dir = freshDir();
    await writeLog(dir, 3);
    const [segment] = await segmentsOf(dir);
    const path = join(dir, segment as string);
    const entryEnds = recordEnds(await fs.readFile(path)).filter(([, isEntry]) => isEntry);
    const file = await fs.open(path, "readwrite");
    await file.truncate((entryEnds[2]?.[0] as number) - 5); // inside entry 3's record
    await file.close();
    const opened = await Wal.open(fs, dir);
    assert.equal(opened.entries.length, 2);
    assert.equal(opened.repairedFrom, `${path}.broken`);
    assert.ok(await fs.exists(`${path}.broken`));
    await opened.wal.save({ term: 1, vote: 1, commit: 3 }, [entry(3, 1, "again")], { sync: true });
    await opened.wal.close();
    const reopened = await Wal.open(fs, dir);
    assert.deepEqual(texts(reopened.entries).slice(-1), ["3/1:again"]);
    await reopened.wal.close();
  });

  test("zeroed sectors and garbage after the last record are repaired", async () => {
    for (const tail of [new Uint8Array(4096), Uint8Array.from({ length: 333 }, (_, i) => (i * 37 + 11) % 256)]) {
      const dir = freshDir();
      await writeLog(dir, 3);
      const [segment] = await segmentsOf(dir);
      const file = await fs.open(join(dir, segment as string), "append");
      await file.append(tail);
      await file.close();
      const opened = await Wal.open(fs, dir);
      assert.equal(opened.entries.length, 3);
      await opened.wal.save(undefined, [entry(4, 1)], { sync: true });
      await opened.wal.close();
      const reopened = await Wal.open(fs, dir);
      await reopened.wal.close();
      assert.equal(reopened.entries.length, 4);
    }
  });

  // Found by the D3 scenario of test:long (seed 10): a lost sector whose first
  // bytes were the last (zero) bytes of the last whole record was not counted.
  test("a zeroed sector starting inside the last whole record (its bytes there zeros) is a torn write, whatever follows", async () => {
    const source = freshDir();
    const wal = await Wal.create(fs, source, metadata);
    // Entries whose data ends in zeros, so some record boundaries have zeros before them in their sector.
    for (let index = 1; index <= 120; index++) await wal.save(undefined, [entry(index, 1, `e${index}-${"x".repeat((index * 13) % 61)}${"\0".repeat(index % 24)}`)], { sync: false });
    await wal.close();
    const [segment] = await segmentsOf(source);
    const full = await fs.readFile(join(source, segment as string));
    const ends = recordEnds(full);
    let tried = 0;
    for (const [index, [end]] of ends.entries()) {
      const sector = Math.floor(end / 512) * 512;
      // A record boundary inside a sector whose bytes before it are zeros, with records after the sector.
      if (end === sector || sector + 1024 > full.length || !full.subarray(sector, end).every((byte) => byte === 0)) continue;
      tried++;
      const dir = freshDir();
      await fs.mkdirp(dir);
      const copy = full.slice();
      copy.fill(0, end, sector + 512);
      const file = await fs.open(join(dir, segment as string), "readwrite");
      await file.writeAt(copy, 0);
      await file.close();
      const opened = await Wal.open(fs, dir);
      await opened.wal.close();
      assert.equal(opened.entries.length, ends.slice(0, index + 1).filter(([, isEntry]) => isEntry).length, `sector at ${sector}, record end ${end}`);
      assert.ok(opened.repairedFrom !== undefined, `sector at ${sector}: damaged copy kept`);
      await fs.removeAll(dir);
    }
    assert.ok(tried > 0, "the log has a record ending in zero padding inside a sector");
  });

  test("a bit flip in a middle record refuses to open", async () => {
    const dir = freshDir();
    await writeLog(dir, 6);
    const [segment] = await segmentsOf(dir);
    const path = join(dir, segment as string);
    const bytes = await fs.readFile(path);
    // Flip a byte inside the third entry's payload ("e3").
    const at = findText(bytes, "e3");
    const file = await fs.open(path, "readwrite");
    await file.writeAt(Uint8Array.of((bytes[at] as number) ^ 0x01), at);
    await file.close();
    await assert.rejects(Wal.open(fs, dir), WalCorruptError);
  });

  // Found by the D4 scenario of test:long: a flipped length or CRC field mid-log
  // was taken for a torn tail, and the log was cut there with no error.
  test("a byte flipped anywhere before the last record never truncates the log: refused, or opened whole", async () => {
    const source = freshDir();
    const wal = await Wal.create(fs, source, metadata);
    for (let index = 1; index <= 12; index += 3) {
      const batch = [index, index + 1, index + 2].map((i) => entry(i, 1, `e${i}-${"x".repeat(i * 7)}`));
      await wal.save({ term: 1, vote: 1, commit: index + 2 }, batch, { sync: true });
    }
    await wal.close();
    const [segment] = await segmentsOf(source);
    const full = await fs.readFile(join(source, segment as string));
    const ends = recordEnds(full);
    const lastStart = ends.at(-2)?.[0] as number;
    const truncatedAt: number[] = [];
    for (let at = 0; at < lastStart; at++) {
      const dir = freshDir();
      await fs.mkdirp(dir);
      const copy = full.slice();
      copy[at] = (copy[at] as number) ^ 0xff;
      const file = await fs.open(join(dir, segment as string), "readwrite");
      await file.writeAt(copy, 0);
      await file.close();
      try {
        const opened = await Wal.open(fs, dir);
        await opened.wal.close();
        // Reserved header bytes and padding carry nothing: then every entry is there.
        if (opened.entries.length !== 12) truncatedAt.push(at);
      } catch (error) {
        assert.ok(error instanceof WalCorruptError, String(error));
      }
      await fs.removeAll(dir);
    }
    assert.deepEqual(truncatedAt, [], "offsets whose flip silently cut the log");
  });

  test("damage in an earlier segment refuses to open", async () => {
    const dir = freshDir();
    await writeLog(dir, 30, { segmentBytesMax: 400 });
    const [first] = await segmentsOf(dir);
    const path = join(dir, first as string);
    const size = await fs.size(path);
    const file = await fs.open(path, "readwrite");
    await file.truncate(size - 3);
    await file.close();
    await assert.rejects(Wal.open(fs, dir), WalCorruptError);
  });
});

function findText(bytes: Uint8Array, text: string): number {
  const needle = new TextEncoder().encode(text);
  for (let i = 0; i + needle.length <= bytes.length; i++) {
    if (needle.every((value, j) => bytes[i + j] === value)) return i;
  }
  throw new Error(`${text} not found`);
}
