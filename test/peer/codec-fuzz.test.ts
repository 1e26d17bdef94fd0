// Issue 24: the peer codecs under random and mutated bytes. decodeMessages,
// decodeSnapshotHeader and FrameReader either decode or throw their own clean
// error (PeerCodecError, FrameTooLargeError, FrameCorruptError), never
// anything else, and never allocate from a length field: a frame or count
// that claims gigabytes is refused before any allocation.
//
// CI runs a few seconds' worth; EDGETCD_FUZZ_ITERATIONS=<seeds> runs more,
// EDGETCD_FUZZ_SEED=<seed> replays one. A failure names its seed.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeMessages, decodeSnapshotHeader, encodeMessages, encodeSnapshotHeader, PeerCodecError } from "../../src/peer/codec.ts";
import { FrameCorruptError, FrameReader, FrameTooLargeError, frameHeaderBytes, sealFrame } from "../../src/peer/framing.ts";
import { EntryType, type Message, MessageType } from "../../src/raft/types.ts";
import { Prng, seedsFromEnvironment } from "../raft/hostile-cluster.ts";

const cleanErrors = [PeerCodecError, FrameTooLargeError, FrameCorruptError];
const frameBytesMax = 1024 * 1024;

function sample(prng: Prng): Message {
  const entries = Array.from({ length: prng.int(4) }, (_, i) => ({ term: 3, index: 10 + i, type: EntryType.Normal, data: prng.bytes(prng.int(40)) }));
  const m: Message = {
    type: prng.pick([MessageType.App, MessageType.Heartbeat, MessageType.AppResp, MessageType.Snap]),
    to: 0x15a73b4f6bf291,
    from: prng.int(2 ** 32),
    term: 3,
    logTerm: 2,
    index: 9,
    entries,
    commit: 8,
    reject: prng.chance(0.5),
    rejectHint: 4,
    context: prng.bytes(prng.int(8)),
  };
  if (m.type === MessageType.Snap) m.snapshot = { metadata: { index: 9, term: 2, confState: { voters: [1, 2, 3], learners: [4] } }, data: prng.bytes(prng.int(16)) };
  return m;
}

/** Flips, inserts, deletes or overwrites bytes; sometimes writes a huge varint or length where one may be. */
function mutate(prng: Prng, input: Uint8Array): Uint8Array {
  const bytes = Array.from(input);
  for (let change = prng.between(1, 4); change > 0; change--) {
    const at = prng.int(bytes.length + 1);
    switch (prng.int(5)) {
      case 0:
        bytes[at] = prng.int(256);
        break;
      case 1:
        bytes.splice(at, 0, ...prng.bytes(prng.between(1, 8)));
        break;
      case 2:
        bytes.splice(at, prng.between(1, 8));
        break;
      case 3:
        bytes.splice(at, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f); // a varint near 2^56
        break;
      case 4:
        bytes.splice(at, 0, 0xff, 0xff, 0xff, 0x0f); // a varint near 2^32
        break;
    }
  }
  return Uint8Array.from(bytes);
}

function expectClean(seed: number, what: string, input: Uint8Array, decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    if (cleanErrors.some((kind) => error instanceof kind)) return;
    throw new Error(`seed ${seed}: ${what} of [${Array.from(input.subarray(0, 64)).join(",")}${input.length > 64 ? ",…" : ""}] threw ${String(error)} (replay: EDGETCD_FUZZ_SEED=${seed} node --import tsx --test test/peer/codec-fuzz.test.ts)`);
  }
}

/** Array buffer growth while `work` runs: a decoder that allocated from a length field would show it. */
function arrayBufferGrowth(work: () => void): number {
  const before = process.memoryUsage().arrayBuffers;
  work();
  return process.memoryUsage().arrayBuffers - before;
}

describe("peer codec fuzz", () => {
  test("random and mutated batches and snapshot headers decode or fail cleanly", () => {
    let decoded = 0;
    const growth = arrayBufferGrowth(() => {
      for (const seed of seedsFromEnvironment(300, 1)) {
        const prng = new Prng(seed);
        const messages = Array.from({ length: prng.between(1, 4) }, () => sample(prng));
        const snap = { ...sample(prng), type: MessageType.Snap, snapshot: { metadata: { index: 9, term: 2, confState: { voters: [1], learners: [] } }, data: prng.bytes(8) } };
        const inputs = [
          mutate(prng, encodeMessages(messages)),
          mutate(prng, encodeSnapshotHeader(snap)),
          prng.bytes(prng.int(64)),
          Uint8Array.from([1, ...prng.bytes(prng.int(64))]),
        ];
        for (const input of inputs) {
          expectClean(seed, "decodeMessages", input, () => {
            decodeMessages(input);
            decoded++;
          });
          expectClean(seed, "decodeSnapshotHeader", input, () => decodeSnapshotHeader(input));
        }
      }
    });
    assert.ok(decoded > 0, "some mutations still decode");
    assert.ok(growth < 256 * 1024 * 1024, `array buffers grew by ${growth} bytes`);
  });

  test("a frame reader fed random and mutated streams in random pieces yields frames or fails cleanly", () => {
    for (const seed of seedsFromEnvironment(300, 1)) {
      const prng = new Prng(seed);
      const frames = Array.from({ length: prng.between(1, 4) }, () => sealFrame(encodeMessages([sample(prng)], frameHeaderBytes)));
      const stream = mutate(prng, Uint8Array.from(frames.flatMap((frame) => Array.from(frame))));
      const reader = new FrameReader(frameBytesMax, prng.chance(0.5) ? 1 : undefined);
      expectClean(seed, "FrameReader", stream, () => {
        for (let at = 0; at < stream.length; ) {
          const piece = prng.between(1, 40);
          reader.push(stream.subarray(at, at + piece));
          at += piece;
          for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
            assert.ok(frame.length <= frameBytesMax);
            if (frame.length > 0) expectClean(seed, "decodeMessages", frame, () => decodeMessages(frame));
          }
        }
      });
    }
  });

  test("lengths and counts that claim gigabytes are refused before anything is allocated", () => {
    const growth = arrayBufferGrowth(() => {
      const reader = new FrameReader(frameBytesMax, 1);
      reader.push(Uint8Array.from([0x7f, 0xff, 0xff, 0xff, 1])); // a 2 GiB frame
      assert.throws(() => reader.next(), FrameTooLargeError);
      // A batch claiming 2^31 messages, an entry count of 2^31, a snapshot claiming 2^40 bytes of data.
      assert.throws(() => decodeMessages(Uint8Array.from([1, 0x80, 0x80, 0x80, 0x80, 0x08])), PeerCodecError);
      const header = encodeSnapshotHeader({ ...sample(new Prng(1)), type: MessageType.Snap, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, data: { length: 2 ** 40 } as Uint8Array } });
      assert.equal(decodeSnapshotHeader(header).dataLength, 2 ** 40, "the claim is only a number: the receiver bounds it (hostile-peer.test.ts)");
    });
    assert.ok(growth < 16 * 1024 * 1024, `array buffers grew by ${growth} bytes`);
  });
});
