// How the simulation encodes its client values and its state-machine state in
// the opaque bytes Raft carries, and how it names an entry for comparisons.

import type { Entry } from "../../src/raft/types.ts";

const valueTag = 0x76; // "v"

/** A client value: a tag byte and a 32-bit unsigned number, unique per run. */
export function encodeValue(value: number): Uint8Array {
  const bytes = new Uint8Array(5);
  bytes[0] = valueTag;
  new DataView(bytes.buffer).setUint32(1, value);
  return bytes;
}

export function decodeValue(data: Uint8Array): number | undefined {
  if (data.byteLength !== 5 || data[0] !== valueTag) return undefined;
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
}

/** The applied state: the last applied index and a hash chained over every applied entry. */
export interface MachineState {
  index: number;
  hash: number;
}

export function encodeMachineState(state: MachineState): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, state.index);
  view.setUint32(4, state.hash);
  return bytes;
}

export function decodeMachineState(data: Uint8Array): MachineState {
  if (data.byteLength !== 8) throw new Error(`snapshot data of ${data.byteLength} bytes`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { index: view.getUint32(0), hash: view.getUint32(4) };
}

/** Names an entry by what makes it the same entry: term, type and data. */
export function entryFingerprint(entry: Entry): string {
  const value = decodeValue(entry.data);
  if (value !== undefined) return `${entry.term}/${entry.type}/v${value}`;
  let hex = "";
  for (const byte of entry.data) hex += byte.toString(16).padStart(2, "0");
  return `${entry.term}/${entry.type}/${hex}`;
}

/** FNV-1a over the fingerprint, chained to the previous state's hash. */
export function chainHash(previous: number, fingerprint: string): number {
  let hash = (previous ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < fingerprint.length; i++) {
    hash ^= fingerprint.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
