// A backend's content in etcd 3.4's own backend layout: the buckets, keys and
// values etcd writes into its bbolt file, so the snapshot Maintenance.Snapshot
// streams is one `etcdctl snapshot status` reads and `etcdctl snapshot
// restore` turns into an etcd member. Facts from etcd 3.4's mvcc, lease,
// auth, membership and alarm packages:
// - "key": revision (8-byte big-endian main, '_', 8-byte sub, then 't' for a
//   deletion) → mvccpb.KeyValue; a deletion's value holds only the key;
// - "meta": "consistent_index" (8 bytes big-endian); "scheduledCompactRev"
//   and "finishedCompactRev" as revisions (17 bytes, sub 0);
// - "lease": id (8 bytes big-endian) → leasepb.Lease {ID 1, TTL 2};
// - "auth": "authEnabled" (one byte), "authRevision" (8 bytes); "authUsers"
//   and "authRoles": name → authpb.User / authpb.Role (edgetcd keeps these
//   as etcd does, so they are copied);
// - "members": id in hex → the member as JSON {id, peerURLs, name,
//   clientURLs, isLearner}; "members_removed": id in hex → "removed";
// - "cluster": "clusterVersion" → "3.4.0";
// - "alarm": etcdserverpb.AlarmMember → empty.
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { toBinary } from "@bufbuild/protobuf";
import { AlarmMemberSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import type { Backend, KvRow } from "../storage/backend.ts";
import { metaKeys } from "../storage/backend.ts";
import { compareBytes, type BoltBucket } from "../storage/bbolt.ts";
import { decodeLeaseRecord, leaseBucketName } from "../lease/lessor.ts";
import { AlarmStore } from "./alarms.ts";
import { MemberStore } from "./members.ts";
import { clusterVersion } from "../version.ts";

const encoder = new TextEncoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);

/** etcd's revToBytes: main, '_', sub, big-endian; 't' appended for a deletion. */
export function etcdRevisionKey(main: number, sub: number, tombstone = false): Uint8Array {
  const key = new Uint8Array(tombstone ? 18 : 17);
  const view = new DataView(key.buffer);
  view.setBigInt64(0, BigInt(main));
  key[8] = 0x5f;
  view.setBigInt64(9, BigInt(sub));
  if (tombstone) key[17] = 0x74;
  return key;
}

function uint64Bytes(value: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(value)));
  return out;
}

/**
 * A row as etcd's stored mvccpb.KeyValue: key 1, create_revision 2,
 * mod_revision 3, version 4, value 5, lease 6, zero fields left out, as
 * toBinary writes it (test/storage/bbolt.test.ts compares the two). Written
 * with the library's BinaryWriter directly: toBinary's reflection took half
 * of a snapshot's time (1.3 s of 200k rows). A deletion holds its key alone
 * (its revision is in the bucket key), as etcd stores it.
 */
export function storedKeyValue(row: KvRow): Uint8Array {
  const writer = new BinaryWriter();
  if (row.key.length > 0) writer.tag(1, WireType.LengthDelimited).bytes(row.key);
  if (row.tombstone) return writer.finish();
  if (row.createRevision !== 0) writer.tag(2, WireType.Varint).int64(row.createRevision);
  if (row.main !== 0) writer.tag(3, WireType.Varint).int64(row.main);
  if (row.version !== 0) writer.tag(4, WireType.Varint).int64(row.version);
  if (row.value.length > 0) writer.tag(5, WireType.LengthDelimited).bytes(row.value);
  if (row.lease !== 0n) writer.tag(6, WireType.Varint).int64(row.lease);
  return writer.finish();
}

function* keyBucket(backend: Backend): Generator<[Uint8Array, Uint8Array]> {
  for (const rows of backend.rowPages(Number.MAX_SAFE_INTEGER)) {
    for (const row of rows) yield [etcdRevisionKey(row.main, row.sub, row.tombstone), storedKeyValue(row)];
  }
}

function metaBucket(backend: Backend): Array<[Uint8Array, Uint8Array]> {
  const entries: Array<[Uint8Array, Uint8Array]> = [[bytes("consistent_index"), uint64Bytes(backend.consistentIndex())]];
  const finished = backend.metaNumber(metaKeys.finishedCompactRevision, -1);
  const scheduled = backend.metaNumber(metaKeys.scheduledCompactRevision, -1);
  if (finished >= 0) entries.push([bytes("finishedCompactRev"), etcdRevisionKey(finished, 0)]);
  if (scheduled >= 0) entries.push([bytes("scheduledCompactRev"), etcdRevisionKey(scheduled, 0)]);
  return entries;
}

function leaseBucket(backend: Backend): Array<[Uint8Array, Uint8Array]> {
  return backend.bucketEntries(leaseBucketName).map(([key, value]) => {
    const id = new DataView(key.buffer, key.byteOffset, key.byteLength).getBigInt64(0);
    const lease = new BinaryWriter().uint32(0x08).int64(id).uint32(0x10).int64(decodeLeaseRecord(value).ttlSeconds).finish();
    return [key, lease];
  });
}

/** etcd's membership JSON: Go's encoding of its Member struct, fields in its order, empty ones left out as its tags say. */
function memberJson(member: { id: number; name: string; peerUrls: string[]; clientUrls: string[]; isLearner: boolean }): string {
  const fields: string[] = [`"id":${member.id}`, `"peerURLs":${JSON.stringify(member.peerUrls)}`];
  if (member.isLearner) fields.push(`"isLearner":true`);
  if (member.name !== "") fields.push(`"name":${JSON.stringify(member.name)}`);
  if (member.clientUrls.length > 0) fields.push(`"clientURLs":${JSON.stringify(member.clientUrls)}`);
  return `{${fields.join(",")}}`;
}

const byKey = (a: [Uint8Array, Uint8Array], b: [Uint8Array, Uint8Array]): number => compareBytes(a[0], b[0]);

/**
 * The backend's content as etcd 3.4's buckets, for writeBbolt. `backend` is a
 * copy no one writes to while the buckets are read (the "key" bucket is read
 * lazily, a page of rows at a time).
 */
export function etcdBucketsOf(backend: Backend): BoltBucket[] {
  const members = new MemberStore(backend);
  const removed = backend.bucketEntries("members_removed").map(([key]) => new DataView(key.buffer, key.byteOffset, 8).getBigUint64(0));
  const alarms = new AlarmStore(backend).get();
  const bucket = (name: string, entries: Iterable<[Uint8Array, Uint8Array]>): BoltBucket => ({ name: bytes(name), entries });
  return [
    bucket("alarm", alarms.map((alarm): [Uint8Array, Uint8Array] => [toBinary(AlarmMemberSchema, alarm), new Uint8Array(0)]).sort(byKey)),
    bucket("auth", backend.bucketEntries("auth")),
    bucket("authRoles", backend.bucketEntries("authRoles")),
    bucket("authUsers", backend.bucketEntries("authUsers")),
    bucket("cluster", [[bytes("clusterVersion"), bytes(clusterVersion)]]),
    bucket("key", keyBucket(backend)),
    bucket("lease", leaseBucket(backend)),
    bucket("members", members.all().map((member): [Uint8Array, Uint8Array] => [bytes(member.id.toString(16)), bytes(memberJson(member))]).sort(byKey)),
    bucket("members_removed", removed.map((id): [Uint8Array, Uint8Array] => [bytes(id.toString(16)), bytes("removed")]).sort(byKey)),
    bucket("meta", metaBucket(backend)),
  ];
}
