import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Backend, metaKeys } from "../../src/storage/backend.ts";
import { bytes, openStore, put, type TestDir, tempDir, text } from "./helpers.ts";

const dirs: TestDir[] = [];
after(() => {
  for (const dir of dirs) dir.remove();
});
async function dir(): Promise<TestDir> {
  const made = await tempDir();
  dirs.push(made);
  return made;
}

describe("backend", () => {
  test("writes batch into one open transaction until commit", async () => {
    const d = await dir();
    const backend = Backend.open(d.sqlite, d.dbPath);
    assert.equal(backend.batchLimit, 10_000);
    assert.equal(backend.pendingWrites, 0);
    backend.putKv(1, 0, bytes("a"), bytes("1"), 1, 1, 0n, false);
    backend.putKv(1, 1, bytes("b"), bytes("2"), 1, 1, 0n, false);
    assert.equal(backend.pendingWrites, 2);
    // Reads on the same connection see the uncommitted batch.
    assert.equal(text(backend.getKv(1, 1)?.value ?? new Uint8Array()), "2");
    backend.commit();
    assert.equal(backend.pendingWrites, 0);
    backend.commit(); // nothing open: no-op
    backend.close();
    const reopened = Backend.open(d.sqlite, d.dbPath);
    assert.equal(text(reopened.getKv(1, 0)?.key ?? new Uint8Array()), "a");
    reopened.close();
  });

  test("consistent index goes in the same transaction as the data: a crash loses both", async () => {
    const d = await dir();
    const backend = Backend.open(d.sqlite, d.dbPath);
    backend.putKv(1, 0, bytes("a"), bytes("old"), 1, 1, 0n, false);
    backend.setConsistentIndex(5, 2);
    backend.commit();
    backend.putKv(2, 0, bytes("a"), bytes("new"), 1, 2, 0n, false);
    backend.setConsistentIndex(6, 2);
    assert.equal(backend.consistentIndex(), 6);
    backend.crash();

    const reopened = Backend.open(d.sqlite, d.dbPath);
    assert.equal(reopened.consistentIndex(), 5);
    assert.equal(reopened.consistentTerm(), 2);
    assert.equal(reopened.getKv(2, 0), undefined, "data of the lost batch is gone too");
    assert.equal(text(reopened.getKv(1, 0)?.value ?? new Uint8Array()), "old");
    reopened.close();
  });

  test("int64 lease ids survive beyond 2^53, negative too", async () => {
    const d = await dir();
    const backend = Backend.open(d.sqlite, d.dbPath);
    const big = 0x7fff_ffff_ffff_fff1n;
    backend.putKv(1, 0, bytes("a"), bytes(""), 1, 1, big, false);
    backend.putKv(1, 1, bytes("b"), bytes(""), 1, 1, -5n, false);
    backend.putKv(1, 2, bytes("c"), bytes(""), 1, 1, 7n, false);
    assert.equal(backend.getKv(1, 0)?.lease, big);
    assert.equal(backend.getKv(1, 1)?.lease, -5n);
    assert.equal(backend.getKv(1, 2)?.lease, 7n);
    assert.equal(text(backend.getKv(1, 0)?.value ?? bytes("x")), "", "empty value reads back empty");
    backend.close();
  });

  test("buckets and meta numbers", async () => {
    const d = await dir();
    const backend = Backend.open(d.sqlite, d.dbPath);
    backend.bucketPut("lease", bytes("b"), bytes("2"));
    backend.bucketPut("lease", bytes("a"), bytes("1"));
    backend.bucketPut("auth", bytes("a"), bytes("x"));
    assert.deepEqual(
      backend.bucketEntries("lease").map(([key, value]) => `${text(key)}=${text(value)}`),
      ["a=1", "b=2"],
    );
    backend.bucketDelete("lease", bytes("a"));
    assert.equal(backend.bucketGet("lease", bytes("a")), undefined);
    assert.equal(text(backend.bucketGet("auth", bytes("a")) ?? new Uint8Array()), "x");
    assert.equal(backend.metaNumber(metaKeys.finishedCompactRevision), 0);
    backend.setMetaNumber(metaKeys.finishedCompactRevision, 42);
    assert.equal(backend.metaNumber(metaKeys.finishedCompactRevision), 42);
    backend.close();
  });

  test("sizes: the file grows with data, in-use never exceeds it", async () => {
    const d = await dir();
    const { backend, store } = openStore(d);
    const before = backend.sizeBytes();
    assert.ok(before > 0);
    const value = "v".repeat(1000);
    for (let i = 0; i < 200; i++) put(store, `key-${i}`, value);
    backend.commit();
    const afterSize = backend.sizeBytes();
    assert.ok(afterSize > before + 100_000, `${afterSize} > ${before}`);
    assert.ok(backend.sizeInUseBytes() <= afterSize);
    assert.ok(backend.sizeInUseBytes() > 0);
    backend.close();
  });
});
