// Reading etcd's own WAL, only as far as adopting an etcd data dir needs: the
// committed entries the bbolt backend beside it may not hold yet (after its
// consistent index), and whether any of them changes the backend. Facts from
// etcd 3.4's wal
// package: segment files `<seq>-<index>.wal` in name order; each record is an
// 8-byte little-endian length (the low 56 bits; when the top bit is set, the
// low 3 bits of the top byte are padding bytes after the record), then a
// walpb.Record {type 1: int64, crc 2: uint32, data 3: bytes}; types metadata
// 1, entry 2, state 3 (a raftpb.HardState {term 1, vote 2, commit 3}), crc 4,
// snapshot 5; a rolling CRC-32C over the records' data, restarted from the
// value a crc record carries; a zero length is preallocated space. An entry
// is a raftpb.Entry {type 1 (0 normal, 1 conf change), term 2, index 3, data
// 4}; a normal entry's data is a bare v2 etcdserverpb.Request (3.4 publishes
// member attributes and the cluster version so; its field 2 is the method
// name) or an InternalRaftRequest: id 1, a v2 request 2, range 3, put 4, delete 5, txn 6, compaction 7, lease grant 8,
// lease revoke 9, alarm 10, lease checkpoint 11, auth 1000 on, header 100.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { FileSystem } from "../ports.ts";
import { crc32c } from "./crc32c.ts";

const recordTypes = { entry: 2, state: 3, crc: 4 } as const;
/** InternalRaftRequest fields that leave the backend as it is. */
const fieldsKeepingBackend = new Set([1, 2, 3, 100]);
/**
 * Changes etcd 3.4 applies through MVCC, which records the entry's index as
 * the backend's consistent index in the same transaction (put, delete, txn,
 * compaction, lease revoke). The others (lease grant, alarms, checkpoints,
 * auth) change the backend without recording it.
 */
const fieldsRecordingIndex = new Set([4, 5, 6, 7, 9]);
const lengthBytes = 8;
/** etcd's maxWALEntrySizeLimit: a record longer than this is damage. */
const recordBytesMax = 10 * 1024 * 1024;

interface Record {
  type: number;
  crc: number;
  data: Uint8Array;
}

function decodeRecord(bytes: Uint8Array): Record {
  const reader = new BinaryReader(bytes);
  const record: Record = { type: 0, crc: 0, data: new Uint8Array(0) };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 0) record.type = Number(reader.int64());
    else if (field === 2 && wireType === 0) record.crc = reader.uint32();
    else if (field === 3 && wireType === 2) record.data = reader.bytes();
    else reader.skip(wireType);
  }
  return record;
}

function commitOf(hardState: Uint8Array): number {
  const reader = new BinaryReader(hardState);
  let commit = 0;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 3 && wireType === 0) commit = Number(reader.uint64());
    else reader.skip(wireType);
  }
  return commit;
}

interface WalEntry {
  index: number;
  confChange: boolean;
  data: Uint8Array;
}

function decodeEntry(bytes: Uint8Array): WalEntry {
  const reader = new BinaryReader(bytes);
  const entry: WalEntry = { index: 0, confChange: false, data: new Uint8Array(0) };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 3 && wireType === 0) entry.index = Number(reader.uint64());
    else if (field === 1 && wireType === 0) entry.confChange = reader.int32() === 1;
    else if (field === 4 && wireType === 2) entry.data = reader.bytes();
    else reader.skip(wireType);
  }
  return entry;
}

/** How a committed entry's request touches the backend: not at all, through MVCC (recording its index), or without recording it. */
export type EntryEffect = { kind: "none" } | { kind: "recorded" } | { kind: "unrecorded"; field: number; body: Uint8Array };

/** The methods of a v2 etcdserverpb.Request (field 2), which 3.4 proposes bare, not inside an InternalRaftRequest. */
const v2Methods = new Set(["PUT", "POST", "DELETE", "QGET", "GET", "HEAD", "SYNC"]);

/** Whether `data` is a bare v2 Request (its field 2 a method name): those touch only the v2 store. */
function isV2Request(data: Uint8Array): boolean {
  try {
    const reader = new BinaryReader(data);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 2 && wireType === 2) return v2Methods.has(new TextDecoder("utf-8", { fatal: true }).decode(reader.bytes()));
      reader.skip(wireType);
    }
  } catch {
    return false;
  }
  return false;
}

function effectOf(entry: WalEntry): EntryEffect {
  if (entry.confChange || entry.data.length === 0 || isV2Request(entry.data)) return { kind: "none" };
  let unrecorded: EntryEffect = { kind: "none" };
  try {
    const reader = new BinaryReader(entry.data);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (fieldsRecordingIndex.has(field)) return { kind: "recorded" };
      if (!fieldsKeepingBackend.has(field)) unrecorded = { kind: "unrecorded", field, body: wireType === 2 ? reader.bytes() : new Uint8Array(0) };
      else reader.skip(wireType);
    }
    return unrecorded;
  } catch {
    return { kind: "recorded" }; // not a request this reader knows: taken as a change it must not skip
  }
}

/**
 * What etcd's WAL in `walDir` commits past `consistentIndex`: the commit
 * index its hard states record (0 when none), and the committed entries after
 * `consistentIndex` whose request changes the backend, with their effect
 * (etcd's next start would apply them). Reading stops at the first record
 * that does not decode or whose CRC does not match, as etcd's reader stops at
 * a torn tail.
 */
export async function etcdWalPending(
  fs: FileSystem,
  walDir: string,
  consistentIndex: number,
): Promise<{ commit: number; changing: Array<{ index: number; effect: EntryEffect }> }> {
  const names = (await fs.list(walDir)).filter((name) => /^[0-9a-f]{16}-[0-9a-f]{16}\.wal$/.test(name));
  let crc = 0;
  let commit = 0;
  // The last record for an index wins (a new leader may have replaced the tail).
  const after = new Map<number, WalEntry>();
  read: for (const name of names) {
    const file = await fs.readFile(fs.join(walDir, name));
    const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
    for (let at = 0; at + lengthBytes <= file.length; ) {
      const field = view.getBigUint64(at, true);
      if (field === 0n) break;
      const length = Number(field & 0x00ff_ffff_ffff_ffffn);
      const padding = field >> 63n === 1n ? Number((field >> 56n) & 7n) : 0;
      if (length > recordBytesMax || at + lengthBytes + length + padding > file.length) break read;
      let record: Record;
      try {
        record = decodeRecord(file.subarray(at + lengthBytes, at + lengthBytes + length));
        if (record.type === recordTypes.crc) {
          crc = record.crc;
        } else {
          crc = crc32c(crc, record.data);
          if (crc !== record.crc) break read;
          if (record.type === recordTypes.state) commit = Math.max(commit, commitOf(record.data));
          if (record.type === recordTypes.entry) {
            const entry = decodeEntry(record.data);
            for (const index of [...after.keys()]) if (index >= entry.index) after.delete(index);
            if (entry.index > consistentIndex) after.set(entry.index, entry);
          }
        }
      } catch {
        break read;
      }
      at += lengthBytes + length + padding;
    }
  }
  const changing = [...after.values()]
    .filter((entry) => entry.index <= commit)
    .map((entry) => ({ index: entry.index, effect: effectOf(entry) }))
    .filter((pending) => pending.effect.kind !== "none");
  return { commit, changing };
}
