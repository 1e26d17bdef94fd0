// The Raft state machine (etcd-io/raft's `raft` struct): one member's view of
// terms, votes, the log and its peers' progress. It takes messages and ticks
// and queues messages to send; it does no IO and reads no clock. Role changes
// swap the step and tick functions, as in etcd-io/raft.
import { Progress, ProgressState } from "./progress.ts";
import { ReadOnlyQueue } from "./read-only.ts";
import { ReplicatedLog } from "./replicated-log.ts";
import { CompactedError } from "./storage-errors.ts";
import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  ProposalDropReason,
  ProposalDroppedError,
  StateType,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
} from "./types.ts";

/** Context of a vote forced by a leader transfer (it bypasses the leader lease). */
export const campaignTransferContext = new TextEncoder().encode("CampaignTransfer");

const emptyBytes = new Uint8Array(0);

type VoteResult = "won" | "lost" | "pending";

export function message(fields: Partial<Message> & Pick<Message, "type">): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: emptyBytes,
    ...fields,
  };
}

export class RaftStateMachine {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  state = StateType.Follower;
  readonly log: ReplicatedLog;
  readonly progress = new Map<NodeId, Progress>();
  /** Messages queued for the caller; see RawNode for which must wait for the persist. */
  messages: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = NONE;
  /** Index of the latest conf change proposed; no new one until it is applied. */
  pendingConfIndex = 0;

  private readonly votes = new Map<NodeId, boolean>();
  private readonly readOnly = new ReadOnlyQueue();
  private pendingReadIndexMessages: Message[] = [];
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private readonly config: RaftConfig;
  private stepRole: (m: Message) => void = (m) => this.stepFollower(m);
  private tickRole: () => void = () => this.tickElection();

  constructor(config: RaftConfig) {
    if (config.heartbeatTick <= 0 || config.electionTick <= config.heartbeatTick) {
      throw new Error("raft: electionTick must be greater than heartbeatTick > 0");
    }
    if (config.readOnlyOption === "lease" && !config.checkQuorum) {
      throw new Error("raft: the lease read mode needs checkQuorum");
    }
    this.config = config;
    this.id = config.id;
    this.log = new ReplicatedLog(config.storage);
    const { hardState, confState } = config.storage.initialState();
    for (const id of confState.voters) this.progress.set(id, new Progress(1, config.maxInflightMsgs, false));
    for (const id of confState.learners) this.progress.set(id, new Progress(1, config.maxInflightMsgs, true));
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      if (hardState.commit > this.log.lastIndex()) {
        throw new Error(`raft: hard state commit ${hardState.commit} is beyond the last index ${this.log.lastIndex()}`);
      }
      // A commit below the snapshot is only stale (commit-only changes need no
      // sync): everything in a snapshot was committed.
      this.log.committed = Math.max(hardState.commit, this.log.committed);
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    const applied = config.applied ?? 0;
    if (applied > 0) {
      // The caller applied up to here, so it was committed even if the hard
      // state's commit on disk is older (commit-only changes are not synced).
      if (applied > this.log.committed) this.log.committed = Math.min(applied, this.log.lastIndex());
      this.log.appliedTo(Math.min(applied, this.log.committed));
    }
    this.becomeFollower(this.term, NONE);
  }

  // --- configuration -------------------------------------------------------

  confState(): ConfState {
    const voters: NodeId[] = [];
    const learners: NodeId[] = [];
    for (const [id, progress] of this.progress) (progress.isLearner ? learners : voters).push(id);
    return { voters: voters.sort((a, b) => a - b), learners: learners.sort((a, b) => a - b) };
  }

  private voterIds(): NodeId[] {
    const ids: NodeId[] = [];
    for (const [id, progress] of this.progress) if (!progress.isLearner) ids.push(id);
    return ids;
  }

  private quorum(): number {
    return Math.floor(this.voterIds().length / 2) + 1;
  }

  /** Whether this member may campaign: a voter of the current configuration. */
  promotable(): boolean {
    const own = this.progress.get(this.id);
    return own !== undefined && !own.isLearner;
  }

  applyConfChange(change: ConfChange): ConfState {
    switch (change.type) {
      case ConfChangeType.AddNode: {
        const existing = this.progress.get(change.nodeId);
        if (existing !== undefined) existing.isLearner = false;
        else this.addProgress(change.nodeId, false);
        break;
      }
      case ConfChangeType.AddLearnerNode:
        // A voter is never demoted (etcd 3.4).
        if (!this.progress.has(change.nodeId)) this.addProgress(change.nodeId, true);
        break;
      case ConfChangeType.RemoveNode:
        this.progress.delete(change.nodeId);
        if (change.nodeId === this.leadTransferee) this.abortLeaderTransfer();
        if (change.nodeId === this.id && this.state === StateType.Leader) {
          this.stepDownAfterRemoval();
          break;
        }
        // A smaller quorum may commit what was waiting.
        if (this.state === StateType.Leader && this.progress.size > 0 && this.maybeCommit()) this.broadcastAppend();
        break;
      case ConfChangeType.UpdateNode:
        break;
    }
    return this.confState();
  }

  private addProgress(id: NodeId, isLearner: boolean): void {
    const progress = new Progress(this.log.lastIndex() + 1, this.config.maxInflightMsgs, isLearner);
    // A new member counts as active so the leader does not step down at once.
    progress.recentActive = true;
    this.progress.set(id, progress);
    // Probe the new member now rather than at the next proposal.
    if (this.state === StateType.Leader && id !== this.id) this.sendAppend(id);
  }

  /**
   * The leader applied its own removal. etcd 3.4 leaves it in charge until
   * its process stops; here it steps down at once, handing over with
   * TimeoutNow to a voter whose log is complete (so none of the uncommitted
   * tail is lost and nobody waits an election timeout). Without such a voter
   * the others elect a leader after their election timeout.
   */
  private stepDownAfterRemoval(): void {
    const lastIndex = this.log.lastIndex();
    const successor = this.voterIds()
      .sort((a, b) => a - b)
      .find((id) => this.progress.get(id)?.match === lastIndex);
    if (successor !== undefined) this.send(message({ type: MessageType.TimeoutNow, to: successor }));
    this.becomeFollower(this.term, NONE);
  }

  // --- role changes ----------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.config.electionTick + this.config.randomInt(this.config.electionTick);
    this.abortLeaderTransfer();
    this.votes.clear();
    for (const [id, old] of this.progress) {
      const progress = new Progress(this.log.lastIndex() + 1, this.config.maxInflightMsgs, old.isLearner);
      if (id === this.id) progress.match = this.log.lastIndex();
      this.progress.set(id, progress);
    }
    this.pendingConfIndex = 0;
    this.readOnly.clear();
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepRole = (m) => this.stepFollower(m);
    this.tickRole = () => this.tickElection();
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
  }

  private becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new Error("raft: invalid transition leader -> candidate");
    this.stepRole = (m) => this.stepCandidate(m);
    this.tickRole = () => this.tickElection();
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  private becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new Error("raft: invalid transition leader -> pre-candidate");
    // Neither term nor vote change: a pre-vote disturbs nobody (thesis §9.6).
    this.stepRole = (m) => this.stepCandidate(m);
    this.tickRole = () => this.tickElection();
    this.votes.clear();
    this.lead = NONE;
    this.state = StateType.PreCandidate;
  }

  private becomeLeader(): void {
    if (this.state === StateType.Follower) throw new Error("raft: invalid transition follower -> leader");
    this.stepRole = (m) => this.stepLeader(m);
    this.tickRole = () => this.tickHeartbeat();
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    this.progress.get(this.id)?.becomeReplicate();
    // Conf changes in the uncommitted tail are pending until applied.
    this.pendingConfIndex = this.log.lastIndex();
    // The leader commits an empty entry of its own term (§5.4.2).
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: emptyBytes }]);
  }

  // --- ticks -------------------------------------------------------------------

  tick(): void {
    this.tickRole();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(message({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTick) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) this.step(message({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.config.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.step(message({ type: MessageType.Beat, from: this.id }));
    }
  }

  // --- elections -----------------------------------------------------------------

  campaign(kind: "pre-election" | "election" | "transfer"): void {
    if (!this.promotable()) return;
    let voteType: MessageType;
    let term: number;
    if (kind === "pre-election") {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1; // the term it would campaign in
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    const responseType = voteType === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (this.poll(this.id, responseType, true) === "won") {
      // A single voter wins at once.
      if (kind === "pre-election") this.campaign("election");
      else this.becomeLeader();
      return;
    }
    for (const id of this.voterIds()) {
      if (id === this.id) continue;
      this.send(
        message({
          type: voteType,
          to: id,
          term,
          index: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          context: kind === "transfer" ? campaignTransferContext : emptyBytes,
        }),
      );
    }
  }

  private poll(id: NodeId, type: MessageType, granted: boolean): VoteResult {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.voterIds()) {
      const vote = this.votes.get(voter);
      if (vote === true) yes++;
      else if (vote === false) no++;
    }
    void type;
    const quorum = this.quorum();
    if (yes >= quorum) return "won";
    if (no >= quorum || this.voterIds().length - no < quorum) return "lost";
    return "pending";
  }

  // --- step ------------------------------------------------------------------------

  step(m: Message): void {
    if (m.term === 0) {
      // A local message.
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const forced = sameBytes(m.context, campaignTransferContext);
        const inLease = this.config.checkQuorum && this.lead !== NONE && this.electionElapsed < this.config.electionTick;
        // A member that heard from a leader within the election timeout ignores
        // votes: a disruptive rejoining member cannot depose it (thesis §4.2.3).
        if (!forced && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // Granted pre-votes carry the future term; the term changes when the real election starts.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.config.checkQuorum || this.config.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // Tell a stale leader about the newer term, so it steps down; without
        // this a member partitioned with pre-vote could never be heard again.
        this.send(message({ type: MessageType.AppResp, to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        this.send(message({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        if (this.state === StateType.Leader) return;
        if (this.hasUnappliedConfChange()) return; // etcd: no campaign while a conf change awaits apply
        this.campaign(this.config.preVote ? "pre-election" : "election");
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        const responseType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          this.send(message({ type: responseType, to: m.from, term: m.term }));
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(message({ type: responseType, to: m.from, term: this.term, reject: true }));
        }
        return;
      }
      default:
        this.stepRole(m);
    }
  }

  private hasUnappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    try {
      return this.log
        .entries(this.log.applied + 1, this.log.committed + 1, Number.MAX_SAFE_INTEGER)
        .some((entry) => entry.type === EntryType.ConfChange);
    } catch (error) {
      if (error instanceof CompactedError) return false;
      throw error;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.broadcastHeartbeat(this.readOnly.lastContext());
        return;
      case MessageType.CheckQuorum:
        if (!this.quorumActive()) this.becomeFollower(this.term, NONE);
        return;
      case MessageType.Prop:
        this.leaderPropose(m);
        return;
      case MessageType.ReadIndex:
        this.leaderReadIndex(m);
        return;
    }
    const progress = this.progress.get(m.from);
    if (progress === undefined) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, progress);
        return;
      case MessageType.HeartbeatResp:
        progress.recentActive = true;
        progress.probeSent = false;
        if (progress.state === ProgressState.Replicate && progress.inflights.full()) progress.inflights.freeFirstOne();
        if (progress.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (this.config.readOnlyOption === "safe" && m.context.length > 0) this.acknowledgeRead(m.from, m.context);
        return;
      case MessageType.SnapStatus:
        if (progress.state !== ProgressState.Snapshot) return;
        if (m.reject) progress.pendingSnapshot = 0;
        progress.becomeProbe();
        // Wait for a heartbeat response before probing again.
        progress.probeSent = true;
        return;
      case MessageType.Unreachable:
        if (progress.state === ProgressState.Replicate) progress.becomeProbe();
        return;
      case MessageType.TransferLeader:
        this.leaderTransfer(m.from, progress);
        return;
    }
  }

  private leaderPropose(m: Message): void {
    if (m.entries.length === 0) throw new Error("raft: proposal without entries");
    if (!this.progress.has(this.id)) throw new ProposalDroppedError(ProposalDropReason.NotVoter);
    if (this.leadTransferee !== NONE) throw new ProposalDroppedError(ProposalDropReason.TransferInProgress);
    const entries = m.entries.map((entry, offset) => {
      if (entry.type !== EntryType.ConfChange) return entry;
      if (this.pendingConfIndex > this.log.applied) {
        // One change at a time: a second is refused while the first is unapplied.
        if (m.from === this.id) throw new ProposalDroppedError(ProposalDropReason.ConfChangePending);
        return { ...entry, type: EntryType.Normal, data: emptyBytes };
      }
      this.pendingConfIndex = this.log.lastIndex() + offset + 1;
      return entry;
    });
    this.appendEntries(entries);
    this.broadcastAppend();
  }

  private leaderReadIndex(m: Message): void {
    const from = m.from === NONE ? this.id : m.from;
    if (this.voterIds().length === 1) {
      this.answerRead(from, this.log.committed, m.context);
      return;
    }
    // A re-sent request already answered in this term gets the same answer (see ReadOnlyQueue.answered).
    const answered = this.readOnly.answeredIndex(m.context);
    if (answered !== undefined) {
      this.answerRead(from, answered, m.context);
      return;
    }
    // Until an entry of this term is committed, the commit index may be stale (§6.4).
    if (this.log.term(this.log.committed) !== this.term) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    if (this.config.readOnlyOption === "lease") {
      this.answerRead(from, this.log.committed, m.context);
      return;
    }
    this.readOnly.add(this.log.committed, { ...m, from });
    this.acknowledgeRead(this.id, m.context);
    this.broadcastHeartbeat(m.context);
  }

  private acknowledgeRead(from: NodeId, context: Uint8Array): void {
    this.readOnly.ack(from, context);
    const acks = this.readOnly.acks(context);
    const voterAcks = this.voterIds().filter((id) => acks.has(id)).length;
    if (voterAcks < this.quorum()) return;
    for (const { index, request } of this.readOnly.advance(context)) this.answerRead(request.from, index, request.context);
  }

  private answerRead(to: NodeId, index: number, context: Uint8Array): void {
    if (to === this.id || to === NONE) this.readStates.push({ index, requestCtx: context });
    else this.send(message({ type: MessageType.ReadIndexResp, to, index, context }));
  }

  private releasePendingReads(): void {
    if (this.pendingReadIndexMessages.length === 0 || this.log.term(this.log.committed) !== this.term) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.leaderReadIndex(m);
  }

  private handleAppendResponse(m: Message, progress: Progress): void {
    progress.recentActive = true;
    if (m.reject) {
      let hint = m.rejectHint;
      // The follower told us the term at its hint: skip whole terms at once.
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (progress.maybeDecrTo(m.index, hint)) {
        if (progress.state === ProgressState.Replicate) progress.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = progress.isPaused();
    if (!progress.maybeUpdate(m.index)) return;
    switch (progress.state) {
      case ProgressState.Probe:
        progress.becomeReplicate();
        break;
      case ProgressState.Snapshot:
        if (progress.match >= progress.pendingSnapshot) progress.becomeProbe();
        break;
      case ProgressState.Replicate:
        progress.inflights.freeLE(m.index);
        break;
    }
    if (this.maybeCommit()) {
      this.releasePendingReads();
      this.broadcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Keep the window full while there is more to send.
    while (this.sendAppend(m.from, false)) {
      /* sent another batch */
    }
    if (m.from === this.leadTransferee && progress.match === this.log.lastIndex()) {
      this.send(message({ type: MessageType.TimeoutNow, to: m.from }));
    }
  }

  private leaderTransfer(transferee: NodeId, progress: Progress): void {
    if (progress.isLearner) return;
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (progress.match === this.log.lastIndex()) this.send(message({ type: MessageType.TimeoutNow, to: transferee }));
    else this.sendAppend(transferee);
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private stepCandidate(m: Message): void {
    const myResponse = this.state === StateType.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw new ProposalDroppedError(ProposalDropReason.NoLeader);
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.ReadIndex:
        return; // no leader to ask: the caller's read times out and retries
      default:
        if (m.type !== myResponse) return;
        switch (this.poll(m.from, m.type, !m.reject)) {
          case "won":
            if (this.state === StateType.PreCandidate) this.campaign("election");
            else {
              this.becomeLeader();
              this.broadcastAppend();
            }
            return;
          case "lost":
            this.becomeFollower(this.term, NONE);
            return;
          case "pending":
            return;
        }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) throw new ProposalDroppedError(ProposalDropReason.NoLeader);
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.TimeoutNow:
        // The leader asked us to take over: campaign now, skipping pre-vote.
        if (this.promotable()) this.campaign("transfer");
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) return; // as etcd: dropped; the caller's read times out and retries
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context });
        return;
    }
  }

  // --- follower handlers ---------------------------------------------------------------

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: lastNew }));
      return;
    }
    // Reject, with a hint where our log may match: the largest index at or
    // below the probe whose term is not above the leader's term there.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      message({
        type: MessageType.AppResp,
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hintIndex,
        logTerm: this.log.term(hintIndex) ?? 0,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(message({ type: MessageType.HeartbeatResp, to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const snapshot = m.snapshot;
    if (snapshot !== undefined && this.restore(snapshot)) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }));
    } else {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
    }
  }

  private restore(snapshot: NonNullable<Message["snapshot"]>): boolean {
    const { index, term, confState } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    if (this.log.matchTerm(index, term)) {
      // We already have it: fast-forward the commit index.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    this.progress.clear();
    for (const id of confState.voters) this.addProgress(id, false);
    for (const id of confState.learners) this.addProgress(id, true);
    for (const progress of this.progress.values()) progress.recentActive = false;
    return true;
  }

  // --- leader helpers -----------------------------------------------------------------

  private appendEntries(entries: Entry[]): void {
    const lastIndex = this.log.lastIndex();
    const stamped = entries.map((entry, offset) => ({ ...entry, term: this.term, index: lastIndex + 1 + offset }));
    this.log.append(stamped);
    this.progress.get(this.id)?.maybeUpdate(this.log.lastIndex());
    this.maybeCommit();
  }

  /** Commits the highest index a quorum of voters has (only of the current term). */
  private maybeCommit(): boolean {
    const matches = this.voterIds()
      .map((id) => (this.progress.get(id) as Progress).match)
      .sort((a, b) => b - a);
    const quorumIndex = matches[this.quorum() - 1] ?? 0;
    return this.log.maybeCommit(quorumIndex, this.term);
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const [id, progress] of this.progress) {
      if (id === this.id) {
        if (!progress.isLearner) active++;
        continue;
      }
      if (progress.recentActive && !progress.isLearner) active++;
      progress.recentActive = false;
    }
    return active >= this.quorum();
  }

  private broadcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private broadcastHeartbeat(context: Uint8Array | undefined): void {
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue;
      this.send(
        message({
          type: MessageType.Heartbeat,
          to: id,
          commit: Math.min(progress.match, this.log.committed),
          context: context ?? emptyBytes,
        }),
      );
    }
  }

  /** Sends the entries (or the snapshot) `to` needs; false if nothing was sent. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const progress = this.progress.get(to);
    if (progress === undefined || progress.isPaused()) return false;
    const previousTerm = this.log.term(progress.next - 1);
    let entries: Entry[] | undefined;
    try {
      entries = this.log.entries(progress.next, this.log.lastIndex() + 1, this.config.maxSizePerMsg);
    } catch (error) {
      if (!(error instanceof CompactedError)) throw error;
    }
    if (previousTerm === undefined || entries === undefined) {
      // What the follower needs was compacted: send the snapshot instead.
      if (!progress.recentActive) return false;
      const snapshot = this.log.snapshot();
      if (snapshot.metadata.index === 0) throw new Error("raft: need a snapshot but none is available");
      this.send(message({ type: MessageType.Snap, to, snapshot }));
      progress.becomeSnapshot(snapshot.metadata.index);
      return true;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send(
      message({
        type: MessageType.App,
        to,
        index: progress.next - 1,
        logTerm: previousTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    const last = entries[entries.length - 1];
    if (last !== undefined) {
      if (progress.state === ProgressState.Replicate) {
        progress.optimisticUpdate(last.index);
        progress.inflights.add(last.index);
      } else if (progress.state === ProgressState.Probe) {
        progress.probeSent = true;
      }
    }
    return true;
  }

  private send(m: Message): void {
    // A forwarded proposal or read keeps its origin, so the leader answers the member that asked.
    const forwarded = (m.type === MessageType.Prop || m.type === MessageType.ReadIndex) && m.from !== NONE;
    const stamped = { ...m, from: forwarded ? m.from : this.id };
    // Vote responses carry the term they answer; everything else (but local
    // proposals and forwarded reads) carries our current term.
    if (
      stamped.type !== MessageType.Vote &&
      stamped.type !== MessageType.VoteResp &&
      stamped.type !== MessageType.PreVote &&
      stamped.type !== MessageType.PreVoteResp &&
      stamped.type !== MessageType.Prop &&
      stamped.type !== MessageType.ReadIndex
    ) {
      stamped.term = this.term;
    }
    if (stamped.type === MessageType.Prop || stamped.type === MessageType.ReadIndex) stamped.term = 0;
    this.messages.push(stamped);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
