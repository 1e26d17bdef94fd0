// Who may talk to this member on its peer port. Every route that carries a
// sender id (the Raft stream, snapshots, forwarded lease requests) admits a
// request only when it names this cluster, this member as `to`, and a current
// member of the cluster as `from`. Statuses and texts are etcd's rafthttp:
// 412 for a wrong cluster or `to`, 410 "removed member" for a removed sender
// (whose transport then stops: it learns it was removed), 404 for a sender
// id that is not a member.
//
// Without peer TLS the headers are only a claim: a forger can name a real
// member. These checks keep out what is plainly not a member (id 0, ids
// never added, removed members), and the Raft core checks every message
// whatever its sender (src/raft/network-message.ts).
import type { LogLimiter } from "../log-limiter.ts";
import type { Logger, PeerIncomingRequest } from "../ports.ts";
import type { NodeId } from "../raft/types.ts";
import { parseNodeId, peerHeaderNames } from "./headers.ts";

/** A sender as the member's live member set sees it. */
export type Membership = "member" | "removed" | "unknown";

/**
 * Looked up on every request and stream frame, so it follows member add and
 * remove as they are applied. A member added but not yet applied here is
 * "unknown" for that moment: refused, it retries.
 */
export type MembershipOf = (id: NodeId) => Membership;

export interface PeerAdmission {
  localId: NodeId;
  clusterId: bigint;
  membershipOf: MembershipOf;
  logger: Logger;
  /** Refusals are logged at most once a second per reason: anyone can send a flood of them. */
  refusalLog: LogLimiter;
}

export const removedMemberText = "removed member";
export const senderNotFoundText = "error sender not found";

const textEncoder = new TextEncoder();

/** The sender's id if the request may proceed; otherwise answers it and returns undefined. */
export function admitPeerRequest(request: PeerIncomingRequest, admission: PeerAdmission): NodeId | undefined {
  const refusal = refusalOf(request, admission);
  if (refusal === undefined) return parseNodeId(request.header(peerHeaderNames.from));
  request.respond(refusal.status, { "content-type": "text/plain", [peerHeaderNames.clusterId]: admission.clusterId.toString(16) });
  request.end(textEncoder.encode(`${refusal.text}\n`));
  return undefined;
}

function refusalOf(request: PeerIncomingRequest, admission: PeerAdmission): { status: number; text: string } | undefined {
  const { localId, logger, refusalLog } = admission;
  const localClusterId = admission.clusterId.toString(16);
  const clusterId = request.header(peerHeaderNames.clusterId);
  const fromHeader = request.header(peerHeaderNames.from);
  const fields = { "local-member-id": localId.toString(16), "remote-peer-id": fromHeader, path: request.path };
  if (clusterId !== localClusterId) {
    refusalLog.warn(logger, "request cluster ID mismatch", { ...fields, "local-member-cluster-id": localClusterId, "remote-peer-cluster-id": clusterId });
    return { status: 412, text: "cluster ID mismatch" };
  }
  if (parseNodeId(request.header(peerHeaderNames.to)) !== localId) {
    refusalLog.warn(logger, "request sent to the wrong member", { ...fields, to: request.header(peerHeaderNames.to) });
    return { status: 412, text: "to field mismatch" };
  }
  const from = parseNodeId(fromHeader);
  if (from === undefined || from === 0 || from === localId) {
    refusalLog.warn(logger, "rejected peer request with an invalid from", fields);
    return { status: 404, text: "invalid from" };
  }
  const membership = admission.membershipOf(from);
  if (membership === "removed") {
    refusalLog.warn(logger, "rejected peer request from a removed member", fields);
    return { status: 410, text: removedMemberText };
  }
  if (membership !== "member") {
    refusalLog.warn(logger, "rejected peer request from a sender that is not a member", fields);
    return { status: 404, text: senderNotFoundText };
  }
  return undefined;
}

