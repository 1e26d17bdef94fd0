import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeMessages, decodeSnapshotHeader, encodeMessages, encodeSnapshotHeader, PeerCodecError } from "../../src/peer/codec.ts";
import { EntryType, type Message, MessageType } from "../../src/raft/types.ts";

function message(type: MessageType, fields: Partial<Message> = {}): Message {
  return { type, to: 2, from: 1, term: 3, logTerm: 2, index: 10, entries: [], commit: 9, reject: false, rejectHint: 0, context: new Uint8Array(0), ...fields };
}

const bytes = (...values: number[]) => new Uint8Array(values);

function roundTrip(messages: Message[]): Message[] {
  return decodeMessages(encodeMessages(messages));
}

describe("peer codec", () => {
  test("every message type round-trips with its fields", () => {
    const types = Object.values(MessageType).filter((value): value is MessageType => typeof value === "number");
    assert.equal(types.length, 19);
    const messages = types.map((type, i) =>
      message(type, {
        to: 2 ** 53 - 1 - i, // the largest ids etcd-style random member ids can take here
        from: 0x1234_5678_9abc + i,
        term: i * 1000,
        logTerm: i,
        index: 2 ** 40 + i,
        commit: i * 7,
        reject: i % 2 === 0,
        rejectHint: i * 3,
        context: bytes(i, i + 1, i + 2),
        entries: i % 3 === 0 ? [{ term: i, index: 5 + i, type: EntryType.ConfChange, data: bytes(9, 8, 7) }] : [],
      }),
    );
    assert.deepEqual(roundTrip(messages), messages);
  });

  test("a Snap message carries metadata, membership and data", () => {
    const data = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
    const snap = message(MessageType.Snap, {
      snapshot: { metadata: { index: 4000, term: 9, confState: { voters: [1, 2, 3], learners: [2 ** 52 + 1] } }, data },
    });
    const [decoded] = roundTrip([snap]);
    assert.deepEqual(decoded, snap);
    const empty = message(MessageType.Snap, { snapshot: { metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) } });
    assert.deepEqual(roundTrip([empty]), [empty]);
  });

  test("a snapshot header leaves the data out and says how much follows", () => {
    const data = new Uint8Array(5000).fill(7);
    const snap = message(MessageType.Snap, { snapshot: { metadata: { index: 50, term: 4, confState: { voters: [1, 2], learners: [] } }, data } });
    const header = encodeSnapshotHeader(snap);
    assert.ok(header.length < 100);
    const { message: decoded, dataLength } = decodeSnapshotHeader(header);
    assert.equal(dataLength, 5000);
    assert.deepEqual(decoded, { ...snap, snapshot: { metadata: snap.snapshot?.metadata, data: new Uint8Array(0) } });
    assert.throws(() => decodeSnapshotHeader(encodeSnapshotHeader(message(MessageType.App))), PeerCodecError);
  });

  test("a large App batch round-trips, entry data as views into the frame", () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({ term: 3, index: 11 + i, type: EntryType.Normal, data: new Uint8Array(i % 300).fill(i & 0xff) }));
    const batch = [message(MessageType.App, { entries }), message(MessageType.Heartbeat), message(MessageType.App, { entries: entries.slice(0, 10) })];
    const encoded = encodeMessages(batch);
    const decoded = decodeMessages(encoded);
    assert.deepEqual(decoded, batch);
    const first = decoded[0]?.entries[299]?.data;
    assert.ok(first !== undefined && first.length === 299);
    assert.equal(first.buffer, encoded.buffer, "entry data is not copied on decode");
  });

  test("an empty batch is one version byte and a zero count", () => {
    assert.deepEqual(encodeMessages([]), bytes(1, 0));
    assert.deepEqual(decodeMessages(bytes(1, 0)), []);
  });

  test("malformed input is refused, never half-decoded", () => {
    const encoded = encodeMessages([message(MessageType.App, { entries: [{ term: 1, index: 1, type: EntryType.Normal, data: bytes(1, 2, 3) }] })]);
    assert.throws(() => decodeMessages(bytes(2, 0)), /version 2/);
    for (let cut = 0; cut < encoded.length; cut++) assert.throws(() => decodeMessages(encoded.subarray(0, cut)), PeerCodecError);
    assert.throws(() => decodeMessages(new Uint8Array([...encoded, 0])), /trailing/);
    assert.throws(() => decodeMessages(bytes(1, 0xff, 0xff, 0xff, 0x7f)), /exceeds/);
    assert.throws(() => decodeMessages(bytes(1, 1, 3, 0, ...new Array(9).fill(0xff))), /varint/);
    assert.throws(() => encodeMessages([message(MessageType.App, { term: -1 })]), /safe unsigned/);
  });
});
