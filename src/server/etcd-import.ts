// An etcd 3.4 snapshot (its bbolt file, etcd-snapshot.ts says the layout)
// turned into an edgetcd backend, for `edgetcd snapshot restore`: users move
// from etcd to edgetcd as they move between etcd clusters. As etcd's restore
// does, what belongs to the old cluster stays behind: its members, removed
// members and alarms (they name the old member ids); the new cluster's
// members come from the restore's flags when the member first starts. Keys
// with their whole history since the last compaction, the compaction marks,
// leases (their TTLs) and auth (users, roles, enabled, revision) come over.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { fromBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../gen/mvccpb/kv_pb.ts";
import { metaKeys, type Backend } from "../storage/backend.ts";
import { encodeLeaseRecord, leaseBucketName } from "../lease/lessor.ts";

const decoder = new TextDecoder();

/** An etcd snapshot this restore cannot take (a key, lease or mark not in etcd's format). */
export class EtcdSnapshotError extends Error {
  constructor(detail: string) {
    super(`snapshot: ${detail}`);
    this.name = "EtcdSnapshotError";
  }
}

/** etcd's bytesToRev: main and sub from a "key" bucket key; 't' after them marks a deletion. */
function revisionOf(key: Uint8Array): { main: number; sub: number; tombstone: boolean } {
  if ((key.length !== 17 && key.length !== 18) || key[8] !== 0x5f || (key.length === 18 && key[17] !== 0x74)) {
    throw new EtcdSnapshotError(`"key" bucket key of ${key.length} bytes is not a revision`);
  }
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const main = Number(view.getBigInt64(0));
  const sub = Number(view.getBigInt64(9));
  if (!Number.isSafeInteger(main) || main < 1 || !Number.isSafeInteger(sub) || sub < 0) throw new EtcdSnapshotError(`revision ${main}_${sub} is out of range`);
  return { main, sub, tombstone: key.length === 18 };
}

/** A leasepb.Lease's TTL (field 2). */
function leaseTtlOf(value: Uint8Array): number {
  const reader = new BinaryReader(value);
  let ttl = 0n;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 2 && wireType === 0) ttl = BigInt(reader.int64());
    else reader.skip(wireType);
  }
  return Number(ttl);
}

/** The counts of what came over, for the restore's log line. */
export interface ImportCounts {
  revisions: number;
  revision: number;
  leases: number;
  users: number;
  roles: number;
}

/**
 * Writes an etcd snapshot's buckets (readBbolt's result) into `backend`, an
 * empty one, in one transaction (committed by the caller's close).
 */
export function importEtcdBuckets(buckets: ReadonlyMap<string, ReadonlyArray<[Uint8Array, Uint8Array]>>, backend: Backend): ImportCounts {
  if (!buckets.has("key") || !buckets.has("meta")) throw new EtcdSnapshotError(`not an etcd backend: no "key" or "meta" bucket (buckets: ${[...buckets.keys()].join(", ") || "none"})`);
  let revision = 0;
  const keyEntries = buckets.get("key") ?? [];
  for (const [key, value] of keyEntries) {
    const { main, sub, tombstone } = revisionOf(key);
    const kv = fromBinary(KeyValueSchema, value);
    if (tombstone) backend.putKv(main, sub, kv.key, new Uint8Array(0), 0, 0, 0n, true);
    else backend.putKv(main, sub, kv.key, kv.value, Number(kv.createRevision), Number(kv.version), kv.lease, false);
    revision = Math.max(revision, main);
  }
  for (const [key, value] of buckets.get("meta") ?? []) {
    const name = decoder.decode(key);
    if (name !== "scheduledCompactRev" && name !== "finishedCompactRev") continue;
    const { main } = revisionOf(value);
    backend.setMetaNumber(name === "scheduledCompactRev" ? metaKeys.scheduledCompactRevision : metaKeys.finishedCompactRevision, main);
    revision = Math.max(revision, main);
  }
  const leases = buckets.get(leaseBucketName) ?? [];
  for (const [key, value] of leases) {
    if (key.length !== 8) throw new EtcdSnapshotError(`lease key of ${key.length} bytes`);
    backend.bucketPut(leaseBucketName, key, encodeLeaseRecord(leaseTtlOf(value)));
  }
  // The backend stands at log index 1, term 1: the member's log then starts
  // with a snapshot there (bootstrap.ts), so members that join get this data.
  backend.setConsistentIndex(1, 1);
  // Auth is kept as etcd keeps it (authpb, the same keys): copied.
  for (const name of ["auth", "authUsers", "authRoles"]) for (const [key, value] of buckets.get(name) ?? []) backend.bucketPut(name, key, value);
  return { revisions: keyEntries.length, revision, leases: leases.length, users: buckets.get("authUsers")?.length ?? 0, roles: buckets.get("authRoles")?.length ?? 0 };
}
