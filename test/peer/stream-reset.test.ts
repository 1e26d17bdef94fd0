// A message stream that can no longer be read must end in a reset the sender
// sees, or the sender keeps writing into a stream nobody reads: found by the
// lossy-link scenario of test/cluster/partition.test.ts under Bun, where a
// follower stayed cut off from its leader for minutes while pings went on.
// The sender side has its own guard: a stream that does not drain within the
// write timeout (etcd's ConnWriteTimeout) is dropped and redialled.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, describe, test } from "node:test";
import { FrameCorruptError, FrameReader } from "../../src/peer/framing.ts";
import { peerPaths, peerRequestHeaders } from "../../src/peer/headers.ts";
import { connectAll, numbered, startPeer, type TestPeer, waitActive, waitFor } from "./support.ts";

const clusterId = 0xc1a5_7e42n;
const started: TestPeer[] = [];
const cleanups: (() => void)[] = [];
after(async () => {
  for (const cleanup of cleanups) cleanup();
  await Promise.all(started.map((p) => p.transport.stop()));
});

/** A raw HTTP/2 message stream from member `from` to `peer`, as a misbehaving or corrupted sender would open it. */
async function rawStream(peer: TestPeer, from = 9): Promise<{ stream: http2.ClientHttp2Stream; closed: Promise<number> }> {
  const session = http2.connect(peer.url);
  session.on("error", () => {});
  cleanups.push(() => session.destroy());
  const stream = session.request({ ":method": "POST", ":path": peerPaths.stream, ...peerRequestHeaders(from, peer.id, clusterId) }, { endStream: false });
  stream.on("error", () => {});
  stream.on("data", () => {});
  const closed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? 0)));
  const status = await new Promise<number>((resolve, reject) => {
    stream.once("response", (headers) => resolve(Number(headers[":status"])));
    stream.once("close", () => reject(new Error("closed before a response")));
  });
  assert.equal(status, 200);
  return { stream, closed };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms))]);
}

describe("peer stream resets", () => {
  test("the receiver resets a stream whose next frame claims more than frameBytesMax", async () => {
    const receiver = await startPeer(1);
    started.push(receiver);
    const { stream, closed } = await rawStream(receiver);
    stream.write(new Uint8Array([0x78, 0x78, 0x78, 0x78, 1, 2, 3])); // a length of 2 GB: a misaligned stream
    await within(closed, 3000, "the reset");
    await waitFor("the warning", () => receiver.logs.some((log) => log.message === "lost peer stream"));
  });

  test("the receiver resets a stream whose frame does not decode", async () => {
    const receiver = await startPeer(2);
    started.push(receiver);
    const { stream, closed } = await rawStream(receiver);
    stream.write(new Uint8Array([0, 0, 0, 3, 0xee, 0xee, 0xee])); // version 0xee is no batch version
    await within(closed, 3000, "the reset");
    assert.equal(receiver.received.length, 0);
  });

  test("the receiver resets a stream whose frame has a plausible length but does not start like a batch, without waiting for it", async () => {
    const receiver = await startPeer(7);
    started.push(receiver);
    const { stream, closed } = await rawStream(receiver);
    // 1 MiB announced, 1 byte sent: a misaligned stream would otherwise wait for the rest while keepalives flow.
    stream.write(new Uint8Array([0, 0x10, 0, 0, 0xee]));
    await within(closed, 3000, "the reset");
    const lost = receiver.logs.find((log) => log.message === "lost peer stream");
    assert.match(String(lost?.fields?.error), /FrameCorruptError/);
  });

  test("FrameReader: a payload's first byte is checked as soon as it arrives", () => {
    const reader = new FrameReader(1024, 1);
    reader.push(new Uint8Array([0, 0, 0, 3, 1, 2]));
    assert.equal(reader.next(), undefined, "a frame starting right waits for its rest");
    reader.push(new Uint8Array([3, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual([...(reader.next() ?? [])], [1, 2, 3]);
    assert.deepEqual([...(reader.next() ?? [9])], [], "a keepalive has no first byte to check");
    reader.push(new Uint8Array([0, 1]));
    assert.equal(reader.next(), undefined, "a header alone says nothing yet");
    reader.push(new Uint8Array([7]));
    assert.throws(() => reader.next(), FrameCorruptError);
  });

  test("a sender whose stream stops draining drops it after the write timeout and redials", async () => {
    // A peer port that answers 200 and then never reads: HTTP/2 keeps answering pings, the stream's window closes.
    let streamsOpened = 0;
    const stalled = http2.createServer();
    stalled.on("stream", (stream) => {
      streamsOpened++;
      stream.respond({ ":status": 200 });
      stream.pause();
    });
    stalled.on("session", (session) => cleanups.push(() => session.destroy()));
    await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => stalled.close());
    const port = (stalled.address() as { port: number }).port;
    const sender = await startPeer(3, { limits: { keepaliveIntervalMs: 50, streamWriteTimeoutMs: 300 } });
    started.push(sender);
    sender.transport.addPeer(4, [`http://127.0.0.1:${port}`]);
    await waitFor("the stream", () => sender.transport.activeSince(4) !== undefined);
    // Enough to exhaust any flow-control window: 64 × 256 KiB.
    const entry = { term: 1, index: 1, type: 0, data: new Uint8Array(256 * 1024) };
    for (let i = 0; i < 64; i++) sender.transport.send([{ ...numbered(3, 4, i, 3), entries: [entry] }]);
    await waitFor("the stalled stream dropped", () => sender.logs.some((log) => log.message === "peer became inactive"), 5000);
    const inactive = sender.logs.find((log) => log.message === "peer became inactive");
    assert.match(String(inactive?.fields?.reason), /drain/);
    await waitFor("a new stream", () => streamsOpened >= 2, 5000);
  });

  test("a stream replaced by a newer one from the same sender is reset, and its sender redials", async () => {
    const [a, b] = [await startPeer(5), await startPeer(6)];
    started.push(a, b);
    connectAll([a, b]);
    await waitActive(a, b);
    a.transport.send([numbered(5, 6, 1)]);
    await waitFor("the first message", () => b.received.length === 1);
    // Someone claiming to be a takes over a's stream at b: a's stream is reset, a redials and takes it back.
    const impostor = await rawStream(b, 5);
    await waitFor("a sees its stream reset", () => a.logs.some((log) => log.message === "peer became inactive"));
    await within(impostor.closed, 5000, "the impostor's stream replaced in turn");
    await waitActive(a, b);
    a.transport.send([numbered(5, 6, 2)]);
    await waitFor("the second message", () => b.received.length === 2);
  });
});
