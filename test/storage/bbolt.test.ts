// bbolt's file layout (src/storage/bbolt.ts): what the writer lays out, the
// reader reads back whole (many pages, branch levels, values larger than a
// page, empty buckets); keys out of order are refused; and a damaged or
// hostile file is a BboltFormatError, never another error, a hang or a
// crash. That real bbolt reads, checks and writes these files is shown by
// test/compat/snapshot.test.ts (etcdctl 3.4 and etcd 3.4 on them).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BboltFormatError, bboltPageBytes, readBbolt, writeBbolt, type BoltBucket } from "../../src/storage/bbolt.ts";
import { seededRandom as random } from "../support/seeded-random.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../src/gen/mvccpb/kv_pb.ts";
import { rowToKeyValue } from "../../src/mvcc/kv.ts";
import { storedKeyValue } from "../../src/server/etcd-snapshot.ts";
import type { KvRow } from "../../src/storage/backend.ts";
import { concatenated } from "../../src/bytes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sample(): { buckets: BoltBucket[]; expected: Map<string, Array<[string, number]>> } {
  const next = random(7);
  const key: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < 30_000; i++) {
    const size = i % 997 === 0 ? 3 * bboltPageBytes + 5 : Math.floor(next() * 200);
    key.push([encoder.encode(`k${String(i).padStart(7, "0")}`), new Uint8Array(size).fill(i % 251)]);
  }
  const meta: Array<[Uint8Array, Uint8Array]> = [[encoder.encode("consistent_index"), new Uint8Array(8).fill(1)]];
  const buckets: BoltBucket[] = [
    { name: encoder.encode("meta"), entries: meta },
    { name: encoder.encode("key"), entries: key },
    { name: encoder.encode("empty"), entries: [] },
  ];
  const expected = new Map<string, Array<[string, number]>>([
    ["empty", []],
    ["key", key.map(([k, v]) => [decoder.decode(k), v.length])],
    ["meta", meta.map(([k, v]) => [decoder.decode(k), v.length])],
  ]);
  return { buckets, expected };
}

describe("bbolt layout", () => {
  test("the writer pauses as often as it is asked to: every 64 leaf pages", async () => {
    let pauses = 0;
    const file = concatenated(await writeBbolt(sample().buckets, { pause: async () => void pauses++ }));
    const leafPages = file.length / bboltPageBytes; // an upper bound: every page but metas, freelist and branches
    assert.ok(pauses >= 10 && pauses <= leafPages / 64 + 3, `${pauses} pauses for ${leafPages} pages`);
  });

  test("what is written is read back whole, buckets in name order, values larger than a page included", async () => {
    const { buckets, expected } = sample();
    const file = concatenated(await writeBbolt(buckets));
    assert.equal(file.length % bboltPageBytes, 0);
    const read = readBbolt(file);
    assert.deepEqual([...read.keys()], ["empty", "key", "meta"]);
    for (const [name, entries] of read) {
      assert.deepEqual(
        entries.map(([k, v]) => [decoder.decode(k), v.length]),
        expected.get(name),
        name,
      );
    }
    const big = read.get("key")?.[997];
    assert.equal(big?.[1].length, 3 * bboltPageBytes + 5);
    assert.ok(big?.[1].every((byte) => byte === 997 % 251));
  });

  test("an empty database, and a trailing SHA-256 (as etcdctl saves a snapshot) are read", async () => {
    const file = concatenated(await writeBbolt([]));
    assert.equal(readBbolt(file).size, 0);
    const withHash = new Uint8Array(file.length + 32);
    withHash.set(file);
    assert.equal(readBbolt(withHash).size, 0);
  });

  test("keys out of order, or twice, are refused", async () => {
    const twice: BoltBucket = { name: encoder.encode("b"), entries: [[encoder.encode("a"), new Uint8Array(0)], [encoder.encode("a"), new Uint8Array(0)]] };
    await assert.rejects(writeBbolt([twice]), /ascending order/);
    const backwards: BoltBucket = { name: encoder.encode("b"), entries: [[encoder.encode("b"), new Uint8Array(0)], [encoder.encode("a"), new Uint8Array(0)]] };
    await assert.rejects(writeBbolt([backwards]), /ascending order/);
  });

  test("not a bbolt file, or a truncated one: BboltFormatError", async () => {
    assert.throws(() => readBbolt(new Uint8Array(0)), BboltFormatError);
    assert.throws(() => readBbolt(encoder.encode("SQLite format 3\0".padEnd(8192, "x"))), BboltFormatError);
    const file = concatenated(await writeBbolt(sample().buckets));
    assert.throws(() => readBbolt(file.subarray(0, file.length / 2)), BboltFormatError);
  });

  test("damaged files (random bytes changed anywhere): a BboltFormatError or a result, nothing else, quickly", async () => {
    const small: BoltBucket[] = [
      { name: encoder.encode("key"), entries: Array.from({ length: 2000 }, (_, i): [Uint8Array, Uint8Array] => [encoder.encode(`k${String(i).padStart(5, "0")}`), encoder.encode(`v${i}`)]) },
      { name: encoder.encode("meta"), entries: [[encoder.encode("x"), encoder.encode("y")]] },
    ];
    const clean = concatenated(await writeBbolt(small));
    const next = random(11);
    let refused = 0;
    for (let round = 0; round < 2000; round++) {
      const file = clean.slice();
      const changes = 1 + Math.floor(next() * 8);
      for (let i = 0; i < changes; i++) {
        // Half the changes land in page headers and element tables, where the offsets are.
        const page = Math.floor(next() * (file.length / bboltPageBytes));
        const at = page * bboltPageBytes + (next() < 0.5 ? Math.floor(next() * 64) : Math.floor(next() * bboltPageBytes));
        file[at] = Math.floor(next() * 256);
      }
      const started = performance.now();
      try {
        readBbolt(file);
      } catch (error) {
        assert.ok(error instanceof BboltFormatError, `round ${round}: ${String(error)}`);
        refused++;
      }
      assert.ok(performance.now() - started < 1000, `round ${round} took too long`);
    }
    assert.ok(refused > 100, `only ${refused} of 2000 damaged files were refused`);
  });

  test("a row as etcd's stored KeyValue: the same bytes as toBinary, deletions with their key alone", () => {
    const next = random(3);
    for (let i = 0; i < 2000; i++) {
      const tombstone = next() < 0.2;
      const row: KvRow = {
        main: 1 + Math.floor(next() * 2 ** 40),
        sub: Math.floor(next() * 5),
        key: new Uint8Array(Math.floor(next() * 40)).map(() => Math.floor(next() * 256)),
        value: tombstone ? new Uint8Array(0) : new Uint8Array(Math.floor(next() * 300)).map(() => Math.floor(next() * 256)),
        createRevision: tombstone ? 0 : Math.floor(next() * 2 ** 40),
        version: tombstone ? 0 : Math.floor(next() * 1000),
        lease: tombstone || next() < 0.5 ? 0n : BigInt.asIntN(64, BigInt(Math.floor(next() * 2 ** 53)) * 1031n),
        tombstone,
      };
      const expected = toBinary(KeyValueSchema, tombstone ? create(KeyValueSchema, { key: row.key }) : rowToKeyValue(row));
      assert.deepEqual(storedKeyValue(row), expected, `row ${i}`);
    }
  });
});
