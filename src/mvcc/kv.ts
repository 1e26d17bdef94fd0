// Shapes shared by the store and its transactions, and the conversions from
// stored rows to mvccpb messages (plain protobuf-es objects, built directly so
// the apply path allocates one object per key-value).
import type { Event, KeyValue } from "../gen/mvccpb/kv_pb.ts";
import type { KvRow } from "../storage/backend.ts";

export interface RangeOptions {
  /** Read revision; 0 or absent = the current one. */
  revision?: number;
  /** Most kvs returned; 0 or absent = no limit. `count` ignores it. */
  limit?: number;
  /** Count only, return no kvs. */
  countOnly?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Keys in the range at the read revision, before any limit. */
  count: number;
  /** The store's revision the read was served at (not the requested one). */
  revision: number;
}

/** Called after each write transaction that changed something. */
export type CommittedHook = (events: Event[], revision: number) => void;

export const eventPut = 0 as Event["type"];
export const eventDelete = 1 as Event["type"];

const emptyBytes = new Uint8Array(0);

/** A stored row as mvccpb.KeyValue (a tombstone carries just its key and mod revision). */
export function rowToKeyValue(row: KvRow): KeyValue {
  if (row.tombstone) return deletedKeyValue(row.key, row.main);
  return {
    $typeName: "mvccpb.KeyValue",
    key: row.key,
    createRevision: BigInt(row.createRevision),
    modRevision: BigInt(row.main),
    version: BigInt(row.version),
    value: row.value,
    lease: row.lease,
  };
}

/** The kv of a DELETE event, as etcd sends it: the key and the deleting revision. */
export function deletedKeyValue(key: Uint8Array, revision: number): KeyValue {
  return {
    $typeName: "mvccpb.KeyValue",
    key,
    createRevision: 0n,
    modRevision: BigInt(revision),
    version: 0n,
    value: emptyBytes,
    lease: 0n,
  };
}

/** A stored row as the watch event it recorded. */
export function rowToEvent(row: KvRow): Event {
  return {
    $typeName: "mvccpb.Event",
    type: row.tombstone ? eventDelete : eventPut,
    kv: rowToKeyValue(row),
  };
}
