// Member and cluster ids. Like etcd, a member id is derived from its peer URLs
// and the cluster token, and the cluster id from the member ids, so the same
// flags give the same ids. We keep member ids below 2^53 so they are exact JS
// numbers (Raft node ids): the low 53 bits of etcd's; on the wire they are
// uint64 as in etcd. The cluster id is etcd's own, from etcd's 64-bit ids.
import { decode, encode } from "cbor-x";
import type { Digest } from "../ports.ts";

export interface MemberIdentity {
  name: string;
  memberId: number;
  clusterId: bigint;
  peerUrls: string[];
  /** Set for a member of a multi-member cluster: the members it was created with. */
  initialMembers?: Array<{ id: number; name: string; peerUrls: string[]; isLearner?: boolean }>;
}

function sha1(digest: Digest, text: string): Promise<Uint8Array> {
  return digest("SHA-1", new TextEncoder().encode(text));
}

function leading53Bits(digest: Uint8Array): number {
  const view = new DataView(digest.buffer, digest.byteOffset, digest.byteLength);
  const high = view.getUint32(0) & 0x1fffff; // 21 bits
  const low = view.getUint32(4); // 32 bits
  const id = high * 2 ** 32 + low;
  return id === 0 ? 1 : id; // 0 means "no node" in Raft
}

export async function memberIdOf(peerUrls: readonly string[], clusterToken: string, digest: Digest): Promise<number> {
  return leading53Bits(await sha1(digest, [...peerUrls].sort().join("") + clusterToken));
}

/**
 * The id of a member added at runtime (`member add`): like etcd's, from its
 * peer URLs and the time of the add, so a member removed and added again
 * under the same URLs gets a new id (its old one stays removed).
 */
export function addedMemberIdOf(peerUrls: readonly string[], nowMs: number, digest: Digest): Promise<number> {
  return memberIdOf(peerUrls, String(nowMs), digest);
}

/**
 * etcd's whole 64-bit member id for these peer URLs and token (the first 8
 * bytes of the same SHA-1): what etcd's cluster id is derived from.
 */
export async function etcdMemberIdOf(peerUrls: readonly string[], clusterToken: string, digest: Digest): Promise<bigint> {
  const hash = await sha1(digest, [...peerUrls].sort().join("") + clusterToken);
  return new DataView(hash.buffer, hash.byteOffset, hash.byteLength).getBigUint64(0);
}

/**
 * etcd's cluster id (RaftCluster.genID): the first 8 bytes of the SHA-1 of the
 * members' 64-bit ids, ascending, each 8 bytes big-endian. Given etcd's member
 * ids (etcdMemberIdOf), the same flags give etcd's cluster id.
 */
export async function clusterIdOf(etcdMemberIds: readonly bigint[], digest: Digest): Promise<bigint> {
  const sorted = [...etcdMemberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = new Uint8Array(8 * sorted.length);
  const view = new DataView(bytes.buffer);
  sorted.forEach((id, index) => view.setBigUint64(8 * index, id));
  const hash = await digest("SHA-1", bytes);
  return new DataView(hash.buffer, hash.byteOffset, hash.byteLength).getBigUint64(0);
}

const metadataVersion = 1;

export function encodeMemberMetadata(identity: MemberIdentity): Uint8Array {
  return encode({ v: metadataVersion, ...identity, clusterId: identity.clusterId.toString() });
}

export function decodeMemberMetadata(bytes: Uint8Array): MemberIdentity {
  const value = decode(bytes) as Omit<MemberIdentity, "clusterId"> & { v: number; clusterId: string };
  if (value.v !== metadataVersion) throw new Error(`unknown WAL metadata version ${value.v}`);
  return {
    name: value.name,
    memberId: value.memberId,
    clusterId: BigInt(value.clusterId),
    peerUrls: value.peerUrls,
    ...(value.initialMembers === undefined ? {} : { initialMembers: value.initialMembers }),
  };
}
