import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { type Message, MessageType } from "../../src/raft/types.ts";
import { connectAll, numbered, startPeer, type TestPeer, waitActive, waitFor } from "./support.ts";

const started: TestPeer[] = [];
after(async () => {
  await Promise.all(started.map((p) => p.transport.stop()));
});

function snapMessage(from: number, to: number, data: Uint8Array): Message {
  return { ...numbered(from, to, 0, MessageType.Snap), snapshot: { metadata: { index: 12_345, term: 4, confState: { voters: [from, to], learners: [] } }, data } };
}

describe("peer snapshots", () => {
  test("a 20 MB snapshot travels on its own request while heartbeats keep flowing", async () => {
    const [a, b] = [await startPeer(1), await startPeer(2)];
    started.push(a, b);
    connectAll([a, b]);
    await waitActive(a, b);

    const data = new Uint8Array(20 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
    const startMs = performance.now();
    a.transport.send([snapMessage(1, 2, data)]);
    const sentAtMs: number[] = [];
    const isSnapshotIn = () => b.received.some((message) => message.type === MessageType.Snap);
    // One heartbeat per millisecond (as fast as timers go) until the snapshot is in.
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (isSnapshotIn()) {
          clearInterval(timer);
          resolve();
          return;
        }
        sentAtMs.push(performance.now());
        a.transport.send([numbered(1, 2, sentAtMs.length)]);
      }, 1);
    });
    await waitFor("snapshot status", () => a.snapshotStatus.length === 1);
    const snapshotIndex = b.received.findIndex((message) => message.type === MessageType.Snap);
    const snapshotAtMs = b.receivedAtMs[snapshotIndex] ?? Number.NaN;
    const heartbeatsBefore = b.received.slice(0, snapshotIndex);
    const latenciesMs = heartbeatsBefore.map((message, i) => (b.receivedAtMs[i] ?? 0) - (sentAtMs[message.commit - 1] ?? 0));
    console.log(
      `20 MB snapshot delivered after ${(snapshotAtMs - startMs).toFixed(0)} ms; ${heartbeatsBefore.length} of ${sentAtMs.length} heartbeats arrived during it, ` +
        `latency max ${Math.max(...latenciesMs).toFixed(1)} ms`,
    );

    assert.deepEqual(a.snapshotStatus, [[2, true]]);
    const delivered = b.received[snapshotIndex];
    assert.equal(delivered?.snapshot?.metadata.index, 12_345);
    assert.deepEqual(delivered?.snapshot?.metadata.confState, { voters: [1, 2], learners: [] });
    assert.ok(delivered?.snapshot?.data.length === data.length && Buffer.from(delivered.snapshot.data).equals(Buffer.from(data)), "snapshot data intact");
    // The heartbeats are not stuck behind the snapshot: most sent while it was
    // on the way arrived before it, each within a few tens of milliseconds.
    // Slack for heartbeats still in flight when the snapshot lands (a loaded machine).
    const slackMs = Math.min(100, (snapshotAtMs - startMs) / 4);
    const sentDuring = sentAtMs.filter((at) => at < snapshotAtMs - slackMs).length;
    assert.ok(heartbeatsBefore.length > 0, "heartbeats arrived while the snapshot was on its way");
    assert.ok(heartbeatsBefore.length >= sentDuring, `${heartbeatsBefore.length} heartbeats before the snapshot, ${sentDuring} sent more than ${slackMs} ms before it`);
    assert.deepEqual(
      heartbeatsBefore.map((message) => message.commit),
      heartbeatsBefore.map((_, i) => i + 1),
    );
  });

  test("a snapshot refused by the receiver reports failure and unreachable", async () => {
    const a = await startPeer(11);
    const b = await startPeer(12, { limits: { snapshotBytesMax: 1024 } });
    started.push(a, b);
    connectAll([a, b]);
    await waitActive(a, b);
    a.transport.send([snapMessage(11, 12, new Uint8Array(64 * 1024))]);
    await waitFor("snapshot status", () => a.snapshotStatus.length === 1);
    assert.deepEqual(a.snapshotStatus, [[12, false]]);
    assert.ok(a.unreachable.includes(12));
    assert.equal(b.received.length, 0);
    // The message stream is unaffected.
    a.transport.send([numbered(11, 12, 1)]);
    await waitFor("heartbeat after refusal", () => b.received.length === 1);
  });
});
