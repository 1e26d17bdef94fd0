import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { Event } from "../../src/gen/mvccpb/kv_pb.ts";
import { EtcdError } from "../../src/errors.ts";
import { eventDelete, eventPut } from "../../src/mvcc/kv.ts";
import { metaKeys } from "../../src/storage/backend.ts";
import { bytes, del, openStore, put, summary, type TestDir, tempDir, text } from "./helpers.ts";

const dirs: TestDir[] = [];
after(() => {
  for (const dir of dirs) dir.remove();
});
async function dir(): Promise<TestDir> {
  const made = await tempDir();
  dirs.push(made);
  return made;
}

const all = new Uint8Array(0); // "every key >= key"

function isEtcdError(message: string) {
  return (error: unknown) => error instanceof EtcdError && error.message === message;
}
const compacted = isEtcdError("etcdserver: mvcc: required revision has been compacted");
const future = isEtcdError("etcdserver: mvcc: required revision is a future revision");

describe("mvcc store: revisions", () => {
  test("each write txn bumps main by one; subs count its changes; an empty txn bumps nothing", async () => {
    const { backend, store } = openStore(await dir());
    assert.equal(store.currentRevision, 1, "an empty store is at revision 1 (etcd)");
    assert.equal(store.compactRevision, -1);
    assert.equal(put(store, "a", "1"), 2);
    const txn = store.write();
    assert.equal(txn.put(bytes("b"), bytes("2"), 0n), 3);
    assert.equal(txn.put(bytes("c"), bytes("3"), 0n), 3);
    assert.equal(txn.deleteRange(bytes("a"), undefined), 1);
    assert.equal(txn.end(), 3);
    assert.equal(store.currentRevision, 3);
    assert.equal(backend.getKv(3, 2)?.tombstone, true, "the delete took sub 2");
    assert.equal(store.write().end(), 3, "read-only txn: no bump");
    assert.equal(del(store, "nothing"), 0);
    assert.equal(store.currentRevision, 3, "delete of nothing: no bump");
    backend.close();
  });

  test("version counts puts in a generation and resets after delete; create revision is kept then renewed", async () => {
    const { backend, store } = openStore(await dir());
    put(store, "k", "a"); // 2
    put(store, "k", "b"); // 3
    put(store, "k", "c"); // 4
    assert.deepEqual(summary(store.range(bytes("k"), undefined).kvs), ["k=c@c2m4v3"]);
    del(store, "k"); // 5
    assert.equal(store.range(bytes("k"), undefined).count, 0);
    put(store, "k", "d"); // 6
    assert.deepEqual(summary(store.range(bytes("k"), undefined).kvs), ["k=d@c6m6v1"]);
    // History reads.
    assert.deepEqual(summary(store.range(bytes("k"), undefined, { revision: 3 }).kvs), ["k=b@c2m3v2"]);
    assert.equal(store.range(bytes("k"), undefined, { revision: 5 }).count, 0);
    assert.equal(store.range(bytes("k"), undefined, { revision: 1 }).count, 0);
    backend.close();
  });

  test("a txn reads its own earlier writes", async () => {
    const { backend, store } = openStore(await dir());
    put(store, "a", "1"); // 2
    const txn = store.write();
    assert.equal(txn.readRevision, 2);
    txn.put(bytes("a"), bytes("2"), 0n);
    assert.equal(txn.readRevision, 3);
    assert.deepEqual(summary(txn.range(bytes("a"), undefined).kvs), ["a=2@c2m3v2"]);
    // The same key again in the same txn gets the next sub and version.
    txn.put(bytes("a"), bytes("3"), 0n);
    assert.deepEqual(summary(txn.range(bytes("a"), undefined).kvs), ["a=3@c2m3v3"]);
    txn.deleteRange(bytes("a"), undefined);
    assert.equal(txn.range(bytes("a"), undefined).count, 0);
    // A second delete of the same range finds nothing more to delete.
    assert.equal(txn.deleteRange(bytes("a"), all), 0);
    txn.end();
    assert.equal(store.currentRevision, 3);
    backend.close();
  });

  test("range: limit, count ignores limit, count only, single key, [key, end), from key", async () => {
    const { backend, store } = openStore(await dir());
    for (const key of ["a", "b", "c", "d"]) put(store, key, key.toUpperCase());
    let result = store.range(bytes("a"), all, { limit: 2 });
    assert.deepEqual(result.kvs.map((kv) => text(kv.key)), ["a", "b"]);
    assert.equal(result.count, 4);
    assert.equal(result.revision, 5);
    result = store.range(bytes("b"), bytes("d"), {});
    assert.deepEqual(result.kvs.map((kv) => text(kv.key)), ["b", "c"]);
    result = store.range(bytes("b"), all, { countOnly: true });
    assert.equal(result.count, 3);
    assert.equal(result.kvs.length, 0);
    result = store.range(bytes("\u0000"), all, {});
    assert.equal(result.count, 4);
    assert.equal(store.range(bytes("bb"), undefined).count, 0);
    backend.close();
  });

  test("future and compacted revisions are errors", async () => {
    const { backend, store } = openStore(await dir());
    for (let i = 0; i < 5; i++) put(store, "k", `${i}`); // 2..6
    assert.throws(() => store.range(bytes("k"), undefined, { revision: 7 }), future);
    store.compact(4);
    assert.equal(store.compactRevision, 4);
    assert.throws(() => store.range(bytes("k"), undefined, { revision: 3 }), compacted);
    // At exactly the compact revision reads still work.
    assert.deepEqual(summary(store.range(bytes("k"), undefined, { revision: 4 }).kvs), ["k=2@c2m4v3"]);
    assert.deepEqual(summary(store.range(bytes("k"), undefined, { revision: 5 }).kvs), ["k=3@c2m5v4"]);
    assert.throws(() => store.compact(4), compacted);
    assert.throws(() => store.compact(3), compacted);
    assert.throws(() => store.compact(7), future);
    backend.close();
  });
});

describe("mvcc store: compaction", () => {
  test("removes every row not needed at or after the compact revision, tombstones included", async () => {
    const { backend, store } = openStore(await dir(), { compactionBatchLimit: 3 });
    put(store, "a", "1"); // 2
    put(store, "a", "2"); // 3
    put(store, "b", "1"); // 4
    del(store, "b"); // 5
    put(store, "c", "1"); // 6
    put(store, "a", "3"); // 7
    store.compact(6);
    const rows = backend.scanRows(0, 0, 100, 100).map((row) => `${row.main}.${row.sub}`);
    // a@3 is a's latest at 6; b was deleted at 5 (gone entirely); c@6; a@7 is newer.
    assert.deepEqual(rows, ["3.0", "6.0", "7.0"]);
    assert.equal(backend.metaNumber(metaKeys.scheduledCompactRevision), 6);
    assert.equal(backend.metaNumber(metaKeys.finishedCompactRevision), 6);
    assert.deepEqual(summary(store.range(bytes("a"), all, { revision: 6 }).kvs), ["a=2@c2m3v2", "c=1@c6m6v1"]);
    assert.deepEqual(summary(store.range(bytes("a"), all).kvs), ["a=3@c2m7v3", "c=1@c6m6v1"]);
    assert.equal(store.index.history(bytes("b")), undefined);
    backend.close();
  });

  test("many keys across batches", async () => {
    const { backend, store } = openStore(await dir(), { compactionBatchLimit: 7 });
    for (let round = 0; round < 3; round++) {
      const txn = store.write();
      for (let i = 0; i < 20; i++) txn.put(bytes(`k${i}`), bytes(`${round}`), 0n);
      txn.end();
    }
    store.compact(4);
    assert.equal(backend.scanRows(0, 0, 100, 1000).length, 20);
    assert.equal(store.range(bytes("k"), all, { revision: 4 }).count, 20);
    backend.close();
  });
});

describe("mvcc store: restart", () => {
  test("close and reopen rebuilds the index: history, versions, leases, current and compact revision", async () => {
    const d = await dir();
    let { backend, store } = openStore(d);
    put(store, "a", "1", 0x7000_0000_0000_0001n); // 2
    put(store, "a", "2", 0x7000_0000_0000_0001n); // 3
    put(store, "b", "1", 9n); // 4
    del(store, "b"); // 5
    put(store, "b", "2"); // 6
    put(store, "c", "1", 11n); // 7
    put(store, "a", "3"); // 8
    del(store, "c"); // 9
    put(store, "d", "1", 12n); // 10
    store.compact(4);
    const before = store.range(bytes("a"), all, { revision: 6 });
    const hashBefore = await store.hashKV(0);
    backend.close();

    ({ backend, store } = openStore(d));
    assert.equal(store.currentRevision, 10);
    assert.equal(store.compactRevision, 4);
    assert.deepEqual(store.range(bytes("a"), all, { revision: 6 }), before);
    assert.deepEqual(summary(store.range(bytes("a"), all).kvs), ["a=3@c2m8v3", "b=2@c6m6v1", "d=1@c10m10v1"]);
    assert.throws(() => store.range(bytes("a"), all, { revision: 3 }), compacted);
    assert.deepEqual(
      store.restoredLeases.map(({ key, lease }) => `${text(key)}:${lease}`),
      ["d:12"],
    );
    assert.deepEqual(await store.hashKV(0), hashBefore);
    // Writing continues from the restored revision with the right versions.
    put(store, "a", "4");
    assert.deepEqual(summary(store.range(bytes("a"), undefined).kvs), ["a=4@c2m11v4"]);
    backend.close();
  });

  test("a crash loses the uncommitted batch; the store reopens at the committed state", async () => {
    const d = await dir();
    let { backend, store } = openStore(d);
    put(store, "a", "1");
    backend.setConsistentIndex(10, 1);
    backend.commit();
    put(store, "a", "2");
    backend.setConsistentIndex(11, 1);
    backend.crash();
    ({ backend, store } = openStore(d));
    assert.equal(backend.consistentIndex(), 10);
    assert.equal(store.currentRevision, 2);
    assert.deepEqual(summary(store.range(bytes("a"), undefined).kvs), ["a=1@c2m2v1"]);
    backend.close();
  });

  test("an interrupted compaction finishes on restart", async () => {
    const d = await dir();
    let { backend, store } = openStore(d);
    for (let i = 0; i < 6; i++) put(store, "k", `${i}`); // 2..7
    // As if the process died right after recording the scheduled mark.
    backend.setMetaNumber(metaKeys.scheduledCompactRevision, 5);
    backend.close();
    ({ backend, store } = openStore(d));
    assert.equal(store.compactRevision, 5);
    assert.equal(backend.metaNumber(metaKeys.finishedCompactRevision), 5);
    assert.deepEqual(
      backend.scanRows(0, 0, 100, 100).map((row) => row.main),
      [5, 6, 7],
    );
    assert.throws(() => store.range(bytes("k"), undefined, { revision: 4 }), compacted);
    backend.close();
  });

  test("when compaction removed every row, the current revision is the compact revision", async () => {
    const d = await dir();
    let { backend, store } = openStore(d);
    put(store, "k", "1"); // 2
    del(store, "k"); // 3
    store.compact(3);
    assert.equal(backend.scanRows(0, 0, 100, 100).length, 0);
    backend.close();
    ({ backend, store } = openStore(d));
    assert.equal(store.currentRevision, 3);
    assert.equal(put(store, "k", "2"), 4);
    backend.close();
  });
});

describe("mvcc store: events", () => {
  test("each committed write txn reports its events once, in order, with its revision", async () => {
    const seen: { revision: number; events: Event[] }[] = [];
    const { backend, store } = openStore(await dir(), { onCommitted: (events, revision) => seen.push({ revision, events }) });
    put(store, "a", "1", 5n);
    const txn = store.write();
    txn.put(bytes("b"), bytes("2"), 0n);
    txn.deleteRange(bytes("a"), undefined);
    txn.end();
    store.write().end();
    del(store, "zzz");
    assert.equal(seen.length, 2);
    assert.equal(seen[0]?.revision, 2);
    assert.equal(seen[1]?.revision, 3);
    const second = seen[1]?.events ?? [];
    assert.deepEqual(
      second.map((event) => `${event.type === eventPut ? "PUT" : "DELETE"} ${text(event.kv?.key ?? new Uint8Array())} m${event.kv?.modRevision}`),
      ["PUT b m3", "DELETE a m3"],
    );
    assert.equal(second[1]?.type, eventDelete);
    assert.equal(seen[0]?.events[0]?.kv?.lease, 5n);
    backend.close();
  });
});
