import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { EntryType, MessageType, type NodeId } from "../../src/raft/types.ts";
import { connectAll, nextTurn, numbered, startPeer, type TestPeer, waitActive, waitFor } from "./support.ts";

const started: TestPeer[] = [];
async function peer(...args: Parameters<typeof startPeer>): Promise<TestPeer> {
  const created = await startPeer(...args);
  started.push(created);
  return created;
}
after(async () => {
  await Promise.all(started.map((p) => p.transport.stop()));
});

/** The sequence numbers `receiver` got from `sender`, in arrival order. */
function sequenceFrom(receiver: TestPeer, sender: NodeId): number[] {
  return receiver.received.filter((message) => message.from === sender).map((message) => message.commit);
}

const range = (count: number) => Array.from({ length: count }, (_, i) => i);

async function sendNumbered(from: TestPeer, to: TestPeer, count: number, perTurn: number): Promise<void> {
  for (let start = 0; start < count; start += perTurn) {
    from.transport.send(range(Math.min(perTurn, count - start)).map((i) => numbered(from.id, to.id, start + i)));
    await nextTurn();
  }
}

describe("peer transport", () => {
  test("two peers exchange thousands of messages, in order per sender", async () => {
    const [a, b] = [await peer(1), await peer(2)];
    connectAll([a, b]);
    await waitActive(a, b);
    await waitActive(b, a);
    const count = 5000;
    await Promise.all([sendNumbered(a, b, count, 250), sendNumbered(b, a, count, 250)]);
    await waitFor("all messages", () => a.received.length === count && b.received.length === count);
    assert.deepEqual(sequenceFrom(b, 1), range(count));
    assert.deepEqual(sequenceFrom(a, 2), range(count));
    assert.deepEqual([a.unreachable, b.unreachable], [[], []]);
  });

  test("three peers: every pair, in order per sender, App entries intact", async () => {
    const peers = [await peer(11), await peer(12), await peer(13)];
    connectAll(peers);
    for (const from of peers) for (const to of peers) if (from !== to) await waitActive(from, to);
    const count = 2000;
    const sends: Promise<void>[] = [];
    for (const from of peers) for (const to of peers) if (from !== to) sends.push(sendNumbered(from, to, count, 200));
    await Promise.all(sends);
    await waitFor("all messages", () => peers.every((p) => p.received.length === 2 * count));
    for (const receiver of peers) {
      for (const sender of peers) if (sender !== receiver) assert.deepEqual(sequenceFrom(receiver, sender.id), range(count));
    }
    const entries = range(100).map((i) => ({ term: 2, index: 10 + i, type: EntryType.Normal, data: new Uint8Array(i).fill(i) }));
    const [p1, p2] = peers as [TestPeer, TestPeer, TestPeer];
    p1.transport.send([{ ...numbered(p1.id, p2.id, count, MessageType.App), entries }]);
    await waitFor("App", () => p2.received.length === 2 * count + 1);
    assert.deepEqual(p2.received.at(-1)?.entries, entries);
  });

  test("a restarted peer on the same port is reconnected and delivery resumes", async () => {
    const a = await peer(21);
    let b = await peer(22);
    const port = Number(new URL(b.url).port);
    connectAll([a, b]);
    await waitActive(a, b);
    a.transport.send([numbered(21, 22, 0)]);
    await waitFor("first message", () => b.received.length === 1);

    await b.transport.stop();
    await waitFor("a notices b is down", () => a.transport.activeSince(22) === undefined);
    const whileDown = 1_000_000;
    a.transport.send([numbered(21, 22, whileDown)]);
    await waitFor("b reported unreachable", () => a.unreachable.includes(22));

    b = await peer(22, { port });
    b.transport.addPeer(21, [a.url]);
    await waitActive(a, b);
    await sendNumbered(a, b, 1000, 100);
    // The message sent while b was down may still go out after the reconnect
    // (it waits in the bounded disconnected queue) or be dropped with the
    // queue on a failed attempt; either is fine for Raft.
    const afterRestart = () => sequenceFrom(b, 21).filter((sequence) => sequence !== whileDown);
    await waitFor("delivery after restart", () => afterRestart().length === 1000);
    assert.deepEqual(afterRestart(), range(1000));
  });

  test("a member of another cluster is refused with 412, and both sides say so", async () => {
    const a = await peer(31);
    const stranger = await peer(32, { clusterId: 0xdead_beefn });
    a.transport.addPeer(32, [stranger.url]);
    await waitFor("refusal logged by the sender", () => a.logs.some((log) => log.level === "error" && /cluster ID/.test(log.message)));
    assert.ok(stranger.logs.some((log) => log.message === "request cluster ID mismatch" && log.fields?.["remote-peer-cluster-id"] === "c1a57e42"));
    assert.equal(a.logs.find((log) => log.level === "error")?.fields?.["remote-peer-cluster-id"], "deadbeef");
    assert.equal(a.transport.activeSince(32), undefined);
    assert.ok(a.unreachable.includes(32));
    a.transport.send([numbered(31, 32, 0)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(stranger.received.length, 0);
  });

  test("unreachable is reported for a peer that is down, and a snapshot to it fails", async () => {
    const down = await peer(42);
    const downUrl = down.url;
    await down.transport.stop();
    const a = await peer(41);
    a.transport.addPeer(42, [downUrl]);
    await waitFor("unreachable", () => a.unreachable.includes(42));
    a.transport.send([{ ...numbered(41, 42, 0, MessageType.Snap), snapshot: { metadata: { index: 5, term: 1, confState: { voters: [41, 42], learners: [] } }, data: new Uint8Array(10) } }]);
    assert.deepEqual(a.snapshotStatus, [[42, false]]);
    assert.equal(a.transport.activeSince(42), undefined);
  });

  test("a full queue drops messages and reports the peer unreachable", async () => {
    const [a, b] = [await peer(51), await peer(52)];
    connectAll([a, b]);
    await waitActive(a, b);
    a.transport.send(range(5000).map((i) => numbered(51, 52, i)));
    assert.deepEqual(a.unreachable, [52]);
    await waitFor("queued messages", () => b.received.length === 4096);
    assert.deepEqual(sequenceFrom(b, 51), range(4096));
  });

  test("the peer port answers /raft/probing and /version", async () => {
    const a = await peer(61);
    const probing = await fetch(`${a.url}/raft/probing`);
    assert.equal(probing.status, 200);
    assert.equal(await probing.text(), "OK");
    const version = await fetch(`${a.url}/version`);
    assert.deepEqual(await version.json(), { etcdserver: "3.4.31", etcdcluster: "3.4.0" });
    assert.equal((await fetch(`${a.url}/raft/stream/message`, { method: "POST", body: "x" })).status, 412);
  });
});
