// The cluster's members as applied from the log, kept in the backend's
// "members" bucket in the same transaction as the apply that changed them.
import { decode, encode } from "cbor-x";
import type { Backend } from "../storage/backend.ts";

export interface MemberRecord {
  id: number;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

const bucket = "members";
/** Ids of removed members, as etcd's members_removed bucket: an id is never used again. */
const removedBucket = "members_removed";

function keyOf(id: number): Uint8Array {
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigUint64(0, BigInt(id));
  return key;
}

function idOf(key: Uint8Array): number {
  return Number(new DataView(key.buffer, key.byteOffset, key.byteLength).getBigUint64(0));
}

export class MemberStore {
  private readonly members = new Map<number, MemberRecord>();
  private readonly removed = new Set<number>();

  constructor(private readonly backend: Backend) {
    this.reload();
  }

  /** Reads the members from the backend again (its file was replaced by a snapshot). */
  reload(): void {
    this.members.clear();
    for (const [, value] of this.backend.bucketEntries(bucket)) {
      const record = decode(value) as MemberRecord;
      this.members.set(record.id, record);
    }
    this.removed.clear();
    for (const [key] of this.backend.bucketEntries(removedBucket)) this.removed.add(idOf(key));
  }

  /** Whether `id` belonged to a member that was removed. */
  isRemoved(id: number): boolean {
    return this.removed.has(id);
  }

  get size(): number {
    return this.members.size;
  }

  all(): MemberRecord[] {
    return [...this.members.values()].sort((a, b) => a.id - b.id);
  }

  get(id: number): MemberRecord | undefined {
    return this.members.get(id);
  }

  put(record: MemberRecord): void {
    this.members.set(record.id, record);
    this.backend.bucketPut(bucket, keyOf(record.id), encode(record));
  }

  remove(id: number): void {
    this.members.delete(id);
    this.backend.bucketDelete(bucket, keyOf(id));
    this.removed.add(id);
    this.backend.bucketPut(removedBucket, keyOf(id), new Uint8Array([1]));
  }
}
