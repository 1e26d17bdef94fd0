// Member and cluster ids. Like etcd, a member id is derived from its peer URLs
// and the cluster token, and the cluster id from the member ids, so the same
// flags give the same ids. We keep member ids below 2^53 so they are exact JS
// numbers (Raft node ids); on the wire they are uint64 as in etcd.
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

export async function clusterIdOf(memberIds: readonly number[], digest: Digest): Promise<bigint> {
  const hash = await sha1(digest, [...memberIds].sort((a, b) => a - b).map((id) => id.toString(16)).join(","));
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
