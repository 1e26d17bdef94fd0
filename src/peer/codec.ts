// The peer wire encoding of Raft messages: a hand-packed binary layout.
//
// Chosen over cbor-x because it measured clearly faster for the message kind
// that dominates traffic (App with many entries); see test/peer/codec-bench.ts
// and the numbers in src/peer/README.md. Two record kinds, each starting with
// its own version byte:
//   batch (a stream frame):  [version] [count] message*
//   snapshot header:          [version] [data length] [batch of one message whose snapshot.data is empty]
// Numbers are unsigned LEB128 varints (ids, terms and indexes are safe
// integers below 2^53, so at most 8 bytes). A message is
//   type:u8 flags:u8 (1 = reject, 2 = has snapshot)
//   to from term logTerm index commit rejectHint
//   context:bytes entryCount (term index type:u8 data:bytes)*
//   [snapshot: index term voterCount voter* learnerCount learner* data:bytes]
// where bytes = varint length, then the bytes. Decoding is zero-copy: entry
// data, contexts and snapshot data are views into the decoded buffer.
import type { Entry, Message, Snapshot } from "../raft/types.ts";

export const batchVersion = 1;
export const snapshotHeaderVersion = 1;

const flagReject = 1;
const flagSnapshot = 2;

/** Thrown on a malformed or unsupported record; the receiver drops the connection. */
export class PeerCodecError extends Error {
  override name = "PeerCodecError";
}

/**
 * Encodes a batch. `headroomBytes` are left zero at the front of the result for
 * the caller's framing, which saves copying the batch into a frame.
 */
export function encodeMessages(messages: readonly Message[], headroomBytes = 0): Uint8Array {
  let size = 1 + varintSize(messages.length);
  for (const message of messages) size += messageSize(message, message.snapshot?.data.length ?? 0);
  const writer = new Writer(size, headroomBytes);
  writer.byte(batchVersion);
  writer.varint(messages.length);
  for (const message of messages) writer.message(message, true);
  return writer.finish();
}

export function decodeMessages(buffer: Uint8Array): Message[] {
  const reader = new Reader(buffer);
  const version = reader.byte();
  if (version !== batchVersion) throw new PeerCodecError(`unsupported message batch version ${version}`);
  const count = reader.varint();
  // Each message takes at least 9 bytes, so a corrupt count cannot make us allocate much.
  if (count > buffer.length) throw new PeerCodecError(`message count ${count} exceeds the frame`);
  const messages: Message[] = [];
  for (let i = 0; i < count; i++) messages.push(reader.message());
  reader.expectEnd();
  return messages;
}

/**
 * The head of a snapshot transfer: the Snap message without its data, and the
 * number of data bytes that follow it on the snapshot stream.
 */
export function encodeSnapshotHeader(message: Message, headroomBytes = 0): Uint8Array {
  const dataLength = message.snapshot?.data.length ?? 0;
  const size = 1 + varintSize(dataLength) + 1 + varintSize(1) + messageSize(message, 0);
  const writer = new Writer(size, headroomBytes);
  writer.byte(snapshotHeaderVersion);
  writer.varint(dataLength);
  writer.byte(batchVersion);
  writer.varint(1);
  writer.message(message, false);
  return writer.finish();
}

export function decodeSnapshotHeader(buffer: Uint8Array): { message: Message; dataLength: number } {
  const reader = new Reader(buffer);
  const version = reader.byte();
  if (version !== snapshotHeaderVersion) throw new PeerCodecError(`unsupported snapshot header version ${version}`);
  const dataLength = reader.varint();
  const messages = decodeMessages(buffer.subarray(reader.position));
  const message = messages[0];
  if (messages.length !== 1 || message === undefined || message.snapshot === undefined) {
    throw new PeerCodecError("a snapshot header holds exactly one message with a snapshot");
  }
  return { message, dataLength };
}

function messageSize(message: Message, snapshotDataLength: number): number {
  let size =
    2 +
    varintSize(message.to) +
    varintSize(message.from) +
    varintSize(message.term) +
    varintSize(message.logTerm) +
    varintSize(message.index) +
    varintSize(message.commit) +
    varintSize(message.rejectHint) +
    bytesSize(message.context.length) +
    varintSize(message.entries.length);
  for (const entry of message.entries) {
    size += varintSize(entry.term) + varintSize(entry.index) + 1 + bytesSize(entry.data.length);
  }
  const snapshot = message.snapshot;
  if (snapshot !== undefined) {
    const { metadata } = snapshot;
    size += varintSize(metadata.index) + varintSize(metadata.term);
    size += varintSize(metadata.confState.voters.length) + varintSize(metadata.confState.learners.length);
    for (const id of metadata.confState.voters) size += varintSize(id);
    for (const id of metadata.confState.learners) size += varintSize(id);
    size += bytesSize(snapshotDataLength);
  }
  return size;
}

function bytesSize(length: number): number {
  return varintSize(length) + length;
}

function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  let size = 4;
  let rest = Math.floor(value / 0x10000000);
  while (rest > 0) {
    size++;
    rest = Math.floor(rest / 0x80);
  }
  return size;
}

class Writer {
  private readonly buffer: Uint8Array;
  private position: number;

  constructor(size: number, headroomBytes: number) {
    this.buffer = new Uint8Array(headroomBytes + size);
    this.position = headroomBytes;
  }

  byte(value: number): void {
    this.buffer[this.position++] = value;
  }

  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new PeerCodecError(`cannot encode ${value}: not a safe unsigned integer`);
    while (value >= 0x80) {
      this.buffer[this.position++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.buffer[this.position++] = value;
  }

  bytes(data: Uint8Array): void {
    this.varint(data.length);
    this.buffer.set(data, this.position);
    this.position += data.length;
  }

  message(message: Message, withSnapshotData: boolean): void {
    const snapshot = message.snapshot;
    this.byte(message.type);
    this.byte((message.reject ? flagReject : 0) | (snapshot !== undefined ? flagSnapshot : 0));
    this.varint(message.to);
    this.varint(message.from);
    this.varint(message.term);
    this.varint(message.logTerm);
    this.varint(message.index);
    this.varint(message.commit);
    this.varint(message.rejectHint);
    this.bytes(message.context);
    this.varint(message.entries.length);
    for (const entry of message.entries) {
      this.varint(entry.term);
      this.varint(entry.index);
      this.byte(entry.type);
      this.bytes(entry.data);
    }
    if (snapshot !== undefined) this.snapshot(snapshot, withSnapshotData);
  }

  private snapshot(snapshot: Snapshot, withData: boolean): void {
    const { metadata } = snapshot;
    this.varint(metadata.index);
    this.varint(metadata.term);
    this.varint(metadata.confState.voters.length);
    for (const id of metadata.confState.voters) this.varint(id);
    this.varint(metadata.confState.learners.length);
    for (const id of metadata.confState.learners) this.varint(id);
    this.bytes(withData ? snapshot.data : emptyBytes);
  }

  finish(): Uint8Array {
    // Invariant: the size pass and the write pass agree.
    if (this.position !== this.buffer.length) {
      throw new Error(`peer codec: wrote ${this.position} bytes, sized ${this.buffer.length}`);
    }
    return this.buffer;
  }
}

const emptyBytes = new Uint8Array(0);

class Reader {
  position = 0;

  constructor(private readonly buffer: Uint8Array) {}

  byte(): number {
    const value = this.buffer[this.position++];
    if (value === undefined) throw new PeerCodecError("truncated record");
    return value;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let shift = 0; shift < 8; shift++) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
      scale *= 0x80;
    }
    throw new PeerCodecError("varint out of range");
  }

  bytes(): Uint8Array {
    const length = this.varint();
    const end = this.position + length;
    if (end > this.buffer.length) throw new PeerCodecError("truncated bytes");
    const view = this.buffer.subarray(this.position, end);
    this.position = end;
    return view;
  }

  message(): Message {
    const type = this.byte();
    const flags = this.byte();
    const to = this.varint();
    const from = this.varint();
    const term = this.varint();
    const logTerm = this.varint();
    const index = this.varint();
    const commit = this.varint();
    const rejectHint = this.varint();
    const context = this.bytes();
    const entryCount = this.varint();
    if (entryCount > this.buffer.length - this.position) throw new PeerCodecError(`entry count ${entryCount} exceeds the frame`);
    const entries: Entry[] = [];
    for (let i = 0; i < entryCount; i++) {
      const entryTerm = this.varint();
      const entryIndex = this.varint();
      const entryType = this.byte();
      entries.push({ term: entryTerm, index: entryIndex, type: entryType, data: this.bytes() });
    }
    const message: Message = { type, to, from, term, logTerm, index, entries, commit, reject: (flags & flagReject) !== 0, rejectHint, context };
    if ((flags & flagSnapshot) !== 0) message.snapshot = this.snapshot();
    return message;
  }

  private snapshot(): Snapshot {
    const index = this.varint();
    const term = this.varint();
    const voters = this.ids();
    const learners = this.ids();
    return { metadata: { index, term, confState: { voters, learners } }, data: this.bytes() };
  }

  private ids(): number[] {
    const count = this.varint();
    if (count > this.buffer.length - this.position) throw new PeerCodecError(`id count ${count} exceeds the frame`);
    const ids: number[] = [];
    for (let i = 0; i < count; i++) ids.push(this.varint());
    return ids;
  }

  expectEnd(): void {
    if (this.position !== this.buffer.length) throw new PeerCodecError(`${this.buffer.length - this.position} trailing bytes`);
  }
}
