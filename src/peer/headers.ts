// Paths and headers of the peer protocol. Ids travel in hex, as etcd prints member and cluster ids.
import type { NodeId } from "../raft/types.ts";

export const peerPaths = {
  /** A long-lived POST whose body is a sequence of message frames. */
  stream: "/raft/stream/message",
  /** A POST per snapshot: a header frame, then the snapshot data. */
  snapshot: "/raft/snapshot",
  probing: "/raft/probing",
  version: "/version",
} as const;

export const peerHeaderNames = {
  clusterId: "x-edgetcd-cluster-id",
  from: "x-edgetcd-from",
  to: "x-edgetcd-to",
} as const;

export type PeerHeaders = Record<string, string>;

export function peerRequestHeaders(from: NodeId, to: NodeId, clusterId: bigint): PeerHeaders {
  return {
    [peerHeaderNames.clusterId]: clusterId.toString(16),
    [peerHeaderNames.from]: from.toString(16),
    [peerHeaderNames.to]: to.toString(16),
    "content-type": "application/octet-stream",
  };
}

/** Parses a hex member id from a header; undefined if absent or not a safe integer. */
export function parseNodeId(value: string | undefined): NodeId | undefined {
  if (value === undefined || !/^[0-9a-f]{1,14}$/i.test(value)) return undefined;
  const id = Number.parseInt(value, 16);
  return Number.isSafeInteger(id) ? id : undefined;
}
