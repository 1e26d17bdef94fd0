// The watchable store on its own, stepped by hand (no scheduler): synced
// delivery, catch-up in bounded batches, victims, compaction, progress, and
// the cost of matching with many watchers.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { keyString } from "../../src/mvcc/key-bytes.ts";
import { unbounded } from "../../src/mvcc/watch-group.ts";
import type { WatchDelivery, WatchStream } from "../../src/mvcc/watch-stream.ts";
import { catchUpRowsMax, WatchableStore } from "../../src/mvcc/watchable-store.ts";
import type { MvccStore } from "../../src/mvcc/store.ts";
import { bytes, del, openStore, put, tempDir, text, type TestDir } from "../mvcc/helpers.ts";

/** A sink that records what it takes, and refuses while `full`. */
class RecordingSink {
  readonly received: WatchDelivery[] = [];
  full = false;
  send(delivery: WatchDelivery, force: boolean): boolean {
    if (this.full && !force) return false;
    this.received.push(delivery);
    return true;
  }
  /** "rev:type:key" per event of watcher `id`, in arrival order. */
  events(id = 0n): string[] {
    return this.received
      .filter((delivery) => delivery.watchId === id)
      .flatMap((delivery) => delivery.events.map((event) => `${event.kv!.modRevision}:${event.type === 0 ? "PUT" : "DEL"}:${text(event.kv!.key)}`));
  }
}

const noFilters = { noPut: false, noDelete: false };

function watch(stream: WatchStream, key: string, options: { end?: string; start?: number; id?: bigint; noPut?: boolean; noDelete?: boolean } = {}) {
  const result = stream.watch({
    id: options.id ?? 0n,
    key: keyString(bytes(key)),
    end: options.end === undefined ? undefined : options.end === "" ? unbounded : keyString(bytes(options.end)),
    startRevision: options.start ?? 0,
    filters: { noPut: options.noPut ?? false, noDelete: options.noDelete ?? false },
    progressNotify: false,
  });
  assert.ok("id" in result, "error" in result ? result.error : "");
  return result.id;
}

/** Runs sync and victim steps until there is nothing left (bounded). */
function settle(hub: WatchableStore): void {
  for (let i = 0; i < 10_000 && hub.hasWork; i++) {
    hub.moveVictims();
    hub.syncWatchers();
  }
}

describe("watchable store", () => {
  const dirs: TestDir[] = [];
  after(() => dirs.forEach((dir) => dir.remove()));
  async function fresh(): Promise<{ store: MvccStore; hub: WatchableStore; sink: RecordingSink; stream: WatchStream }> {
    const dir = await tempDir();
    dirs.push(dir);
    const { store } = openStore(dir);
    const hub = new WatchableStore(store);
    const sink = new RecordingSink();
    return { store, hub, sink, stream: hub.newStream(sink) };
  }

  test("synced watchers get each txn's events as it commits; single key, prefix range and from-key", async () => {
    const { store, sink, stream } = await fresh();
    const single = watch(stream, "a");
    const range = watch(stream, "a", { end: "b" });
    const fromKey = watch(stream, "b", { end: "" });
    put(store, "a", "1");
    put(store, "ab", "2");
    put(store, "b", "3");
    put(store, "zz", "4");
    del(store, "a", "c");
    assert.deepEqual(sink.events(single), ["2:PUT:a", "6:DEL:a"]);
    assert.deepEqual(sink.events(range), ["2:PUT:a", "3:PUT:ab", "6:DEL:a", "6:DEL:ab"]);
    assert.deepEqual(sink.events(fromKey), ["4:PUT:b", "5:PUT:zz", "6:DEL:b"]);
    // The deleteRange is one revision: one response per watcher.
    const rangeResponses = sink.received.filter((delivery) => delivery.watchId === range && delivery.revision === 6);
    assert.equal(rangeResponses.length, 1);
    assert.equal(rangeResponses[0]!.events.length, 2);
  });

  test("start revision 0 is current+1; a future start sends nothing before it; filters drop puts or deletes", async () => {
    const { store, hub, sink, stream } = await fresh();
    put(store, "k", "1");
    const now = watch(stream, "k");
    const future = watch(stream, "k", { start: store.currentRevision + 3 });
    const noPut = watch(stream, "k", { noPut: true });
    const noDelete = watch(stream, "k", { noDelete: true });
    assert.equal(hub.syncedCount, 4);
    put(store, "k", "2"); // 3
    put(store, "k", "3"); // 4
    del(store, "k"); // 5
    put(store, "k", "4"); // 6
    assert.deepEqual(sink.events(now), ["3:PUT:k", "4:PUT:k", "5:DEL:k", "6:PUT:k"]);
    assert.deepEqual(sink.events(future), ["5:DEL:k", "6:PUT:k"]);
    assert.deepEqual(sink.events(noPut), ["5:DEL:k"]);
    assert.deepEqual(sink.events(noDelete), ["3:PUT:k", "4:PUT:k", "6:PUT:k"]);
  });

  test("a watcher in the past catches up from the backend in bounded batches, whole revisions, then joins the synced group", async () => {
    const { store, hub, sink, stream } = await fresh();
    const total = catchUpRowsMax * 2 + 17;
    for (let i = 0; i < total; i++) put(store, `key/${i % 50}`, `v${i}`);
    // One big txn whose rows straddle a batch boundary must still arrive in one response.
    const txn = store.write();
    for (let i = 0; i < 30; i++) txn.put(bytes(`key/${i}`), bytes("big"), 0n);
    const bigRevision = txn.end();
    put(store, "key/after", "x");
    const id = watch(stream, "key/", { end: "key0", start: 2 });
    assert.equal(hub.unsyncedCount, 1);
    let steps = 0;
    while (hub.unsyncedCount > 0) {
      const before = sink.received.length;
      hub.syncWatchers();
      steps++;
      for (const delivery of sink.received.slice(before)) assert.ok(delivery.events.length <= catchUpRowsMax + 30);
    }
    assert.ok(steps >= 3, `${steps} steps`);
    assert.equal(hub.syncedCount, 1);
    const events = sink.events(id);
    assert.equal(events.length, total + 30 + 1);
    const revisions = events.map((line) => Number(line.split(":")[0]));
    assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b));
    const bigResponses = sink.received.filter((delivery) => delivery.events.some((event) => Number(event.kv!.modRevision) === bigRevision));
    assert.equal(bigResponses.length, 1, "one revision never split");
    put(store, "key/live", "y");
    assert.equal(sink.events(id).at(-1), `${store.currentRevision}:PUT:key/live`);
  });

  test("a slow stream's watchers become victims, are retried, and lose nothing", async () => {
    const { store, hub, sink, stream } = await fresh();
    const id = watch(stream, "s", { end: "t" });
    put(store, "s1", "a");
    sink.full = true;
    put(store, "s2", "b");
    put(store, "s3", "c");
    assert.equal(hub.victimCount, 1);
    assert.equal(hub.moveVictims(), 0, "still full");
    sink.full = false;
    settle(hub);
    put(store, "s4", "d");
    assert.deepEqual(sink.events(id), ["2:PUT:s1", "3:PUT:s2", "4:PUT:s3", "5:PUT:s4"]);
    assert.equal(hub.syncedCount, 1);
  });

  test("start below the compact revision is canceled with compact_revision; exactly at it is allowed", async () => {
    const { store, hub, sink, stream } = await fresh();
    for (let i = 0; i < 6; i++) put(store, "c", `${i}`); // revisions 2..7
    store.compact(5);
    const below = watch(stream, "c", { start: 4 });
    const at = watch(stream, "c", { start: 5 });
    settle(hub);
    const canceled = sink.received.filter((delivery) => delivery.watchId === below);
    assert.deepEqual(canceled.map((d) => [d.compactRevision, d.revision, d.events.length]), [[5, 0, 0]]);
    assert.deepEqual(sink.events(at), ["5:PUT:c", "6:PUT:c", "7:PUT:c"]);
    assert.equal(stream.cancel(below), false, "a compacted watcher is gone");
    assert.equal(stream.cancel(at), true);
  });

  test("progress for all waits until every watcher of the stream is synced, then never runs ahead of events", async () => {
    const { store, hub, sink, stream } = await fresh();
    for (let i = 0; i < 5; i++) put(store, "p", `${i}`);
    watch(stream, "p", { start: 2 });
    stream.requestProgress();
    assert.equal(sink.received.length, 0, "deferred while unsynced");
    settle(hub);
    const last = sink.received.at(-1)!;
    assert.equal(last.watchId, -1n);
    assert.equal(last.revision, store.currentRevision);
    const eventRevisions = sink.received.flatMap((d) => d.events.map((e) => Number(e.kv!.modRevision)));
    assert.ok(Math.max(...eventRevisions) <= last.revision);
    // Synced: answered at once.
    stream.requestProgress();
    assert.equal(sink.received.at(-1)!.watchId, -1n);
  });

  test("periodic progress goes only to synced progress_notify watchers that got no events since the last tick", async () => {
    const { store, hub, sink, stream } = await fresh();
    const result = stream.watch({ id: 7n, key: "q", end: undefined, startRevision: 0, filters: noFilters, progressNotify: true });
    assert.deepEqual(result, { id: 7n });
    hub.tickProgress();
    assert.deepEqual(sink.received.map((d) => [d.watchId, d.events.length, d.revision]), [[7n, 0, 1]]);
    put(store, "q", "1");
    hub.tickProgress(); // elided: an event went out since the last tick
    assert.equal(sink.received.length, 2);
    hub.tickProgress();
    assert.deepEqual(sink.received.at(-1), { watchId: 7n, events: [], revision: 2, compactRevision: 0 });
  });

  test("ids: auto ids count up skipping taken ones; a duplicate and an empty range are refused with etcd's text", async () => {
    const { stream } = await fresh();
    assert.deepEqual(stream.watch({ id: 1n, key: "a", end: undefined, startRevision: 0, filters: noFilters, progressNotify: false }), { id: 1n });
    assert.equal(watch(stream, "a"), 0n);
    assert.equal(watch(stream, "a"), 2n);
    assert.deepEqual(stream.watch({ id: 2n, key: "a", end: undefined, startRevision: 0, filters: noFilters, progressNotify: false }), {
      error: "mvcc: duplicate watch ID provided on the WatchStream",
    });
    assert.deepEqual(stream.watch({ id: 0n, key: "b", end: "a", startRevision: 0, filters: noFilters, progressNotify: false }), {
      error: "mvcc: watcher range is empty",
    });
  });

  test("with no synced watchers, notify returns without touching the events", async () => {
    const { hub, stream } = await fresh();
    watch(stream, "x", { start: 1 }); // unsynced only
    const untouchable = new Proxy([], {
      get() {
        throw new Error("notify read the events");
      },
    });
    hub.notify(untouchable, 2);
  });

  test("10,000 key watchers and 5,000 range watchers: each put reaches only its own, in far less than a scan", async () => {
    const { store, hub } = await fresh();
    const sink = new RecordingSink();
    const stream = hub.newStream(sink);
    const watchers = 10_000;
    for (let i = 0; i < watchers; i++) watch(stream, `w/${i}`);
    for (let i = 0; i < watchers / 2; i++) watch(stream, `r/${i}/`, { end: `r/${i}0` });
    assert.equal(hub.syncedCount, watchers * 1.5);
    const start = performance.now();
    const puts = 2000;
    for (let i = 0; i < puts; i++) {
      put(store, `w/${i}`, "v");
      put(store, `r/${i}/x`, "v");
    }
    const perPutMs = (performance.now() - start) / (puts * 2);
    assert.equal(sink.received.length, puts * 2, "each put reached exactly one watcher");
    // A scan of 15,000 watchers per put would cost far more than this.
    assert.ok(perPutMs < 1, `${perPutMs.toFixed(3)} ms per put`);
  });
});
