// The API-layer watch session on a store, without a server: fragments of a
// large revision (etcd's sendFragments), and the bounded response queue.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ResponseHeaderSchema, WatchCreateRequestSchema, type WatchResponse } from "../../src/gen/etcdserverpb/rpc_pb.ts";
import { WatchableStore } from "../../src/mvcc/watchable-store.ts";
import { watchStreamResponsesMax, WatchSession } from "../../src/api/watch-service.ts";
import { bytes, openStore, put, tempDir, text, type TestDir } from "../mvcc/helpers.ts";

describe("watch session", () => {
  const dirs: TestDir[] = [];
  after(() => dirs.forEach((dir) => dir.remove()));
  async function fresh(fragmentBytes: number) {
    const dir = await tempDir();
    dirs.push(dir);
    const { store } = openStore(dir);
    const hub = new WatchableStore(store);
    const header = (revision?: bigint) => create(ResponseHeaderSchema, { revision: revision ?? BigInt(store.currentRevision) });
    const session = new WatchSession({ watchHub: hub, header }, fragmentBytes);
    return { store, hub, session };
  }
  async function take(iterator: AsyncIterator<WatchResponse>, count: number): Promise<WatchResponse[]> {
    const taken: WatchResponse[] = [];
    while (taken.length < count) taken.push((await iterator.next()).value as WatchResponse);
    return taken;
  }

  test("a revision above the size limit is split into fragments only for a watcher that asked", async () => {
    const { store, session } = await fresh(300);
    session.create(create(WatchCreateRequestSchema, { key: bytes("f/"), rangeEnd: bytes("f0"), fragment: true }));
    session.create(create(WatchCreateRequestSchema, { key: bytes("f/"), rangeEnd: bytes("f0") }));
    const txn = store.write();
    for (let i = 0; i < 10; i++) txn.put(bytes(`f/${i}`), bytes("x".repeat(100)), 0n);
    txn.end();
    const abort = new AbortController();
    const responses = session.responses(abort.signal);
    const created = await take(responses, 2);
    assert.ok(created.every((r) => r.created));
    const fragments: WatchResponse[] = [];
    for (;;) {
      const [next] = await take(responses, 1);
      if (next!.watchId !== 0n) {
        // The other watcher: one whole response.
        assert.equal(next!.events.length, 10);
        assert.equal(next!.fragment, false);
        break;
      }
      fragments.push(next!);
    }
    assert.ok(fragments.length >= 3, `${fragments.length} fragments`);
    assert.deepEqual(fragments.map((r) => r.fragment), [...fragments.slice(1).map(() => true), false]);
    assert.deepEqual(fragments.flatMap((r) => r.events.map((e) => text(e.kv!.key))), Array.from({ length: 10 }, (_, i) => `f/${i}`));
    abort.abort();
    await responses.return(undefined);
  });

  test("an unread session queues at most its bound of event responses; the rest wait as victims and arrive in order", async () => {
    const { store, hub, session } = await fresh(1 << 20);
    session.create(create(WatchCreateRequestSchema, { key: bytes("q") }));
    const writes = watchStreamResponsesMax * 2;
    for (let i = 0; i < writes; i++) put(store, "q", `${i}`);
    assert.equal(session.full, true);
    assert.equal(hub.victimCount, 1);
    const abort = new AbortController();
    const responses = session.responses(abort.signal);
    const revisions: number[] = [];
    await take(responses, 1); // created
    while (revisions.length < writes) {
      const [next] = await take(responses, 1);
      revisions.push(...next!.events.map((e) => Number(e.kv!.modRevision)));
      // What the scheduler would do when the stream drains.
      if (hub.hasWork) {
        hub.moveVictims();
        hub.syncWatchers();
      }
    }
    assert.deepEqual(revisions, Array.from({ length: writes }, (_, i) => i + 2));
    abort.abort();
    await responses.return(undefined);
  });
});
