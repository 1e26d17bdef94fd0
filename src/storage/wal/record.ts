// WAL record framing. Every record is
//
//   offset  size  field
//   0       4     payload length in bytes (u32, little-endian)
//   4       4     CRC-32C of (type byte + payload), seeded with the previous
//                 record's CRC, so records cannot be reordered or spliced
//   8       1     record type (RecordType)
//   9       7     zero
//   16      n     payload
//   16+n    p     zero padding to a multiple of 8 bytes
//
// A header of all zeros marks the end of the written part of a segment.
import { crc32c } from "../crc32c.ts";
import { EntryType, type Entry, type HardState } from "../../raft/types.ts";

export enum RecordType {
  /** Caller metadata (member and cluster ids); first in every segment after the CRC record. */
  Metadata = 1,
  Entry = 2,
  HardState = 3,
  Snapshot = 4,
  /** Carries the previous segment's last CRC, so the chain spans segments. */
  Crc = 5,
}

export const recordHeaderBytes = 16;
/** No record may claim more than this; a larger length is damage, not data. */
export const recordPayloadBytesMax = 256 * 1024 * 1024;

export interface DecodedRecord {
  type: RecordType;
  payload: Uint8Array;
  crc: number;
  /** Offset of the record after this one. */
  end: number;
}

export type DecodeResult =
  | { kind: "record"; record: DecodedRecord }
  | { kind: "end" } // clean end: end of file, or a zero header followed only by zeros
  | { kind: "damaged"; reason: string };

const paddedLength = (length: number) => (length + 7) & ~7;

export function recordCrc(seed: number, type: RecordType, payload: Uint8Array): number {
  return crc32c(crc32c(seed, Uint8Array.of(type)), payload);
}

/** Writes one record into `target` at `offset`; returns its CRC and the next offset. */
export function encodeRecordInto(
  target: Uint8Array,
  offset: number,
  seed: number,
  type: RecordType,
  payload: Uint8Array,
): { crc: number; end: number } {
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  const crc = recordCrc(seed, type, payload);
  view.setUint32(offset, payload.length, true);
  view.setUint32(offset + 4, crc, true);
  target[offset + 8] = type;
  target.set(payload, offset + recordHeaderBytes);
  return { crc, end: offset + recordSize(payload.length) };
}

export function recordSize(payloadLength: number): number {
  return recordHeaderBytes + paddedLength(payloadLength);
}

/** Reads the record at `offset`, checking bounds and the CRC chain. */
export function decodeRecord(bytes: Uint8Array, offset: number, seed: number): DecodeResult {
  if (offset === bytes.length) return { kind: "end" };
  if (offset + recordHeaderBytes > bytes.length) {
    return allZero(bytes, offset) ? { kind: "end" } : { kind: "damaged", reason: "partial record header" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(offset, true);
  const type = bytes[offset + 8] as number;
  if (length === 0 && type === 0 && view.getUint32(offset + 4, true) === 0) {
    return allZero(bytes, offset) ? { kind: "end" } : { kind: "damaged", reason: "zeroed record followed by data" };
  }
  if (length > recordPayloadBytesMax) return { kind: "damaged", reason: `record length ${length} out of bounds` };
  const end = offset + recordSize(length);
  if (end > bytes.length) return { kind: "damaged", reason: "record cut short" };
  if (!(type in RecordType)) return { kind: "damaged", reason: `unknown record type ${type}` };
  const payload = bytes.subarray(offset + recordHeaderBytes, offset + recordHeaderBytes + length);
  const crc = view.getUint32(offset + 4, true);
  if (recordCrc(seed, type as RecordType, payload) !== crc) return { kind: "damaged", reason: "checksum mismatch" };
  return { kind: "record", record: { type: type as RecordType, payload, crc, end } };
}

/** The stored CRC of the record at `offset`, trusted only to probe what follows a damaged record. */
export function storedCrcAndEnd(bytes: Uint8Array, offset: number): { crc: number; end: number } | undefined {
  if (offset + recordHeaderBytes > bytes.length) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(offset, true);
  if (length > recordPayloadBytesMax) return undefined;
  const end = offset + recordSize(length);
  return end <= bytes.length ? { crc: view.getUint32(offset + 4, true), end } : undefined;
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

// --- payloads ------------------------------------------------------------

const entryHeaderBytes = 17; // index u64, term u64, type u8

export function entryPayload(entry: Entry): Uint8Array {
  const payload = new Uint8Array(entryHeaderBytes + entry.data.length);
  const view = new DataView(payload.buffer);
  view.setBigUint64(0, BigInt(entry.index), true);
  view.setBigUint64(8, BigInt(entry.term), true);
  payload[16] = entry.type;
  payload.set(entry.data, entryHeaderBytes);
  return payload;
}

export function decodeEntry(payload: Uint8Array): Entry {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    index: Number(view.getBigUint64(0, true)),
    term: Number(view.getBigUint64(8, true)),
    type: payload[16] === EntryType.ConfChange ? EntryType.ConfChange : EntryType.Normal,
    // A copy: the segment buffer it came from is not kept.
    data: payload.slice(entryHeaderBytes),
  };
}

export function hardStatePayload(hardState: HardState): Uint8Array {
  return u64s(hardState.term, hardState.vote, hardState.commit);
}

export function decodeHardState(payload: Uint8Array): HardState {
  const [term, vote, commit] = readU64s(payload, 3);
  return { term: term as number, vote: vote as number, commit: commit as number };
}

export function snapshotPayload(snapshot: { index: number; term: number }): Uint8Array {
  return u64s(snapshot.index, snapshot.term);
}

export function decodeSnapshot(payload: Uint8Array): { index: number; term: number } {
  const [index, term] = readU64s(payload, 2);
  return { index: index as number, term: term as number };
}

export function crcPayload(crc: number): Uint8Array {
  return u64s(crc);
}


function u64s(...values: number[]): Uint8Array {
  const payload = new Uint8Array(values.length * 8);
  const view = new DataView(payload.buffer);
  values.forEach((value, i) => view.setBigUint64(i * 8, BigInt(value), true));
  return payload;
}

function readU64s(payload: Uint8Array, count: number): number[] {
  if (payload.length !== count * 8) throw new Error(`payload of ${payload.length} bytes, expected ${count * 8}`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return Array.from({ length: count }, (_, i) => Number(view.getBigUint64(i * 8, true)));
}
