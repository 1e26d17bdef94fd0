// The membership half of the node: member add, remove, update and promote as
// Raft configuration changes (one at a time), leader moves and the handover
// when a leader stops, and the apply side of a committed change (Raft's
// configuration, the member store, the peer transport).
import { decode as decodeCbor, encode as encodeCbor } from "cbor-x";
import type { Clock, Digest, Logger } from "../ports.ts";
import { etcdError } from "../errors.ts";
import { decodeConfChange } from "../raft/conf-change-codec.ts";
import { ConfChangeType, ProposalDroppedError, type Entry, type NodeId } from "../raft/types.ts";
import type { PeerTransport } from "../peer/transport.ts";
import { addedMemberIdOf } from "./identity.ts";
import type { MemberRecord, MemberStore } from "./members.ts";
import type { Proposals } from "./proposals.ts";
import type { RaftLog } from "./raft-log.ts";

export interface MembershipOptions {
  memberId: number;
  log: RaftLog;
  members: MemberStore;
  /** Undefined for a member started without a peer network (in-process, alone). */
  transport: PeerTransport | undefined;
  proposals: Proposals;
  clock: Clock;
  digest: Digest;
  logger: Logger;
  requestTimeoutMs: number;
  heartbeatIntervalMs: number;
  assertServing: () => void;
  /** The member stops serving (failed, removed or stopping). */
  stopped: () => boolean;
  /** This member applied its own removal. */
  onRemovedSelf: () => void;
}

export class Membership {
  constructor(private readonly options: MembershipOptions) {}

  async add(peerUrls: string[], isLearner: boolean): Promise<MemberRecord> {
    const log = this.clusterLog();
    const { members, clock, digest } = this.options;
    if (peerUrls.length === 0 || !peerUrls.every(isHttpUrl)) throw etcdError("memberBadUrls");
    const taken = new Set(members.all().flatMap((member) => member.peerUrls));
    if (peerUrls.some((url) => taken.has(url))) throw etcdError("peerUrlExists");
    // A new id from the URLs and the time, as etcd's; never one a removed
    // member had: re-added under the same URLs, a member replaying the log
    // would otherwise apply its predecessor's removal to itself and stop.
    let nowMs = clock.nowMs();
    let id = await addedMemberIdOf(peerUrls, nowMs, digest);
    while (members.isRemoved(id)) id = await addedMemberIdOf(peerUrls, ++nowMs, digest);
    if (members.get(id) !== undefined) throw etcdError("memberExists");
    await this.proposeConfChange(log, isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, id, { peerUrls });
    return members.get(id) ?? { id, name: "", peerUrls, clientUrls: [], isLearner };
  }

  async remove(id: number): Promise<void> {
    const log = this.clusterLog();
    if (this.options.members.get(id) === undefined) throw etcdError("memberNotFound");
    await this.proposeConfChange(log, ConfChangeType.RemoveNode, id, {});
  }

  async update(id: number, peerUrls: string[]): Promise<void> {
    const log = this.clusterLog();
    if (this.options.members.get(id) === undefined) throw etcdError("memberNotFound");
    if (peerUrls.length === 0 || !peerUrls.every(isHttpUrl)) throw etcdError("memberBadUrls");
    await this.proposeConfChange(log, ConfChangeType.UpdateNode, id, { peerUrls });
  }

  async promote(id: number): Promise<void> {
    const log = this.clusterLog();
    const member = this.options.members.get(id);
    if (member === undefined) throw etcdError("memberNotFound");
    if (!member.isLearner) throw etcdError("memberNotLearner");
    // etcd's readiness rule needs the leader's view of the learner's progress
    // (its match at least 90% of the leader's). etcd forwards a promotion from a
    // follower to the leader; we do not forward yet, so a follower refuses.
    if (!log.isLeader) throw etcdError("notLeader");
    const progress = log.status().progress;
    const learnerMatch = progress.get(id)?.match ?? 0;
    const leaderMatch = progress.get(this.options.memberId)?.match ?? 0;
    if (learnerMatch < leaderMatch * 0.9) throw etcdError("learnerNotReady");
    await this.proposeConfChange(log, ConfChangeType.AddNode, id, {});
  }

  /** Hands leadership to `target` and waits until it has it (etcd's MoveLeader). */
  async moveLeader(target: number): Promise<void> {
    const log = this.clusterLog();
    if (!log.isLeader) throw etcdError("notLeader");
    const member = this.options.members.get(target);
    if (member === undefined || member.isLearner) throw etcdError("badLeaderTransferee");
    if (target === this.options.memberId) return;
    log.transferLeader(target);
    const deadline = this.options.clock.nowMs() + this.options.requestTimeoutMs;
    while (log.leader !== target) {
      if (this.options.clock.nowMs() > deadline) throw etcdError("timeoutDueToLeaderFail");
      await this.pause();
    }
  }

  /**
   * etcd's TransferLeadership, run when the member is told to stop: a leader
   * hands over to the voter with the highest match index (the one that needs
   * least to catch up before its TimeoutNow), so the cluster has a leader again
   * within a round trip instead of an election timeout. Raft's TimeoutNow, as
   * moveLeader; bounded by the request timeout, as etcd's is. Never throws: a
   * failed handover is logged and stopping goes on, as in etcd's Stop.
   */
  async transferLeadershipForStop(): Promise<void> {
    const { log, clock } = this.options;
    if (!log.isLeader || this.options.stopped()) return;
    const transferee = mostUpToDateVoter(log.status().progress, this.options.memberId);
    if (transferee === undefined) return; // the only voter: nobody to hand over to (etcd skips it too)
    const startedMs = clock.nowMs();
    const deadline = startedMs + this.options.requestTimeoutMs;
    log.transferLeader(transferee);
    // Unlike moveLeader, stop waiting as soon as this member no longer leads
    // (handed over, or deposed) or Raft gave the transfer up (after an
    // election timeout): when a whole cluster stops at once the transferee
    // is stopping too, and waiting the full request timeout helps nobody.
    while (log.isLeader && log.status().leadTransferee === transferee && clock.nowMs() < deadline) await this.pause();
    const fields = { "transferee-id": transferee.toString(16), "took-ms": clock.nowMs() - startedMs };
    if (log.isLeader) this.options.logger.warn("leadership transfer failed", fields);
    else this.options.logger.info("leadership transferred before stopping", fields);
  }

  /** A committed membership change: Raft's configuration, the member store, the transport; its proposer's waiter answered. */
  apply(entry: Entry): void {
    const { log, members, transport, memberId } = this.options;
    const change = decodeConfChange(entry.data);
    log.applyConfChange(change);
    const context =
      change.context.length > 0 ? (decodeCbor(change.context) as { name?: string; peerUrls?: string[]; requestId?: number }) : {};
    if (context.requestId !== undefined) {
      const waiter = this.options.proposals.take(context.requestId);
      // Resolved after the member store below is updated (same turn).
      if (waiter !== undefined) queueMicrotask(() => waiter.resolve(undefined));
    }
    switch (change.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        const existing = members.get(change.nodeId);
        const isLearner = change.type === ConfChangeType.AddLearnerNode;
        members.put({
          id: change.nodeId,
          name: existing?.name ?? context.name ?? "",
          peerUrls: context.peerUrls ?? existing?.peerUrls ?? [],
          clientUrls: existing?.clientUrls ?? [],
          isLearner: existing !== undefined && !isLearner ? false : isLearner,
        });
        const record = members.get(change.nodeId);
        if (change.nodeId !== memberId && record !== undefined) transport?.updatePeer(change.nodeId, record.peerUrls);
        break;
      }
      case ConfChangeType.RemoveNode:
        members.remove(change.nodeId);
        transport?.removePeer(change.nodeId);
        if (change.nodeId === memberId) this.options.onRemovedSelf();
        break;
      case ConfChangeType.UpdateNode: {
        const existing = members.get(change.nodeId);
        if (existing !== undefined && context.peerUrls !== undefined) {
          members.put({ ...existing, peerUrls: context.peerUrls });
          if (change.nodeId !== memberId) transport?.updatePeer(change.nodeId, context.peerUrls);
        }
        break;
      }
    }
  }

  private clusterLog(): RaftLog {
    this.options.assertServing();
    // Without a peer network (an in-process member) there is nobody to reach a new member with.
    if (this.options.transport === undefined) throw etcdError("notCapable");
    return this.options.log;
  }

  private async proposeConfChange(log: RaftLog, type: ConfChangeType, nodeId: number, context: { peerUrls?: string[] }): Promise<void> {
    const { proposals } = this.options;
    // As any proposal (and as etcd's raft node holds them), a conf change
    // waits for a leader it can go to rather than failing at once.
    if (proposals.leader() === 0) await proposals.waitForLeader();
    const requestId = proposals.nextId();
    const reply = proposals.waitFor<void>(requestId);
    try {
      log.proposeConfChange({ type, nodeId, context: encodeCbor({ ...context, requestId }) });
    } catch (error) {
      const dropped = error instanceof ProposalDroppedError;
      proposals.settle(requestId, dropped ? etcdError(error.reason === "no-leader" ? "noLeader" : "timeout") : error);
    }
    return reply;
  }

  private pause(): Promise<void> {
    return new Promise<void>((resolve) => this.options.clock.setTimer(this.options.heartbeatIntervalMs, resolve));
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.port !== "";
  } catch {
    return false;
  }
}

/** The voter other than `self` with the highest match index in the leader's progress; undefined when there is none. */
function mostUpToDateVoter(progress: ReadonlyMap<NodeId, { match: number; isLearner: boolean }>, self: NodeId): NodeId | undefined {
  let best: { id: NodeId; match: number } | undefined;
  for (const [id, { match, isLearner }] of progress) {
    if (id === self || isLearner) continue;
    if (best === undefined || match > best.match) best = { id, match };
  }
  return best?.id;
}
