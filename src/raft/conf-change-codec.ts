// A conf-change entry's data: version byte, change type, node id (u64 big
// endian), then the opaque context (edgetcd puts the member's attributes there).
import { ConfChangeType, type ConfChange } from "./types.ts";

const version = 1;
const headerBytes = 10;

export function encodeConfChange(change: ConfChange): Uint8Array {
  const data = new Uint8Array(headerBytes + change.context.length);
  data[0] = version;
  data[1] = change.type;
  new DataView(data.buffer).setBigUint64(2, BigInt(change.nodeId));
  data.set(change.context, headerBytes);
  return data;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length < headerBytes || data[0] !== version) throw new Error("raft: malformed conf change entry");
  const type = data[1] as ConfChangeType;
  if (!(type in ConfChangeType)) throw new Error(`raft: unknown conf change type ${type}`);
  const nodeId = Number(new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(2));
  return { type, nodeId, context: data.slice(headerBytes) };
}
