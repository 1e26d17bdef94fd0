// The caller's handle on the Raft core (etcd-io/raft's RawNode): feed it
// ticks, proposals and messages; take a Ready, carry it out, advance.
//
// Which messages wait for the persist: everything a member says that depends
// on its own durable state (vote responses, append responses, a candidate's
// vote requests after voting for itself, forwarded proposals and reads, which
// are harmless to delay) goes in `messagesAfterPersist`. Only a leader's
// appends, heartbeats, snapshots and TimeoutNow go in `messages`: the leader
// may write its log in parallel with its followers (thesis §10.2.1), because
// its own entries count towards a commit that is applied only after this
// Ready's persist.
import { decodeConfChange, encodeConfChange } from "./conf-change-codec.ts";
import { networkMessageProblem } from "./network-message.ts";
import { message, RaftStateMachine } from "./state-machine.ts";
import {
  EntryType,
  MessageType,
  NONE,
  ProposalDroppedError,
  StateType,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type SoftState,
} from "./types.ts";

const maxCommittedBytesPerReady = 64 * 1024 * 1024;

const leaderEagerTypes = new Set([MessageType.App, MessageType.Heartbeat, MessageType.Snap, MessageType.TimeoutNow]);

export interface RaftStatus {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  leadTransferee: NodeId;
  progress: Map<NodeId, { match: number; next: number; state: number; isLearner: boolean }>;
}

export { decodeConfChange, encodeConfChange };

export class RawNode {
  private readonly raft: RaftStateMachine;
  private previousSoftState: SoftState;
  private previousHardState: HardState;

  constructor(config: RaftConfig) {
    this.raft = new RaftStateMachine(config);
    this.previousSoftState = this.softState();
    this.previousHardState = this.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  campaign(): void {
    this.raft.step(message({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Throws ProposalDroppedError when the proposal cannot be taken. */
  propose(data: Uint8Array): void {
    this.raft.step(
      message({ type: MessageType.Prop, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] }),
    );
  }

  proposeConfChange(change: ConfChange): void {
    this.raft.step(
      message({
        type: MessageType.Prop,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(change) }],
      }),
    );
  }

  applyConfChange(change: ConfChange): ConfState {
    return this.raft.applyConfChange(change);
  }

  /**
   * A message from the network. Returns why it was dropped, or undefined when
   * it was stepped. A message no correct member could send in our state is
   * dropped before the core sees it (network-message.ts): input from another
   * process never reaches one of the core's assertions.
   */
  step(m: Message): string | undefined {
    const problem = networkMessageProblem(m, this.raft);
    if (problem !== undefined) return problem;
    try {
      this.raft.step(m);
    } catch (error) {
      // A proposal another member forwarded here, which this member can no
      // longer take (it lost its leader, or is handing leadership over), is
      // dropped and the proposer's request times out: etcd's node discards
      // Step's error for messages from the network. Thrown, it stopped the member.
      if (m.type === MessageType.Prop && error instanceof ProposalDroppedError) return `proposal dropped: ${error.reason}`;
      throw error;
    }
    return undefined;
  }

  readIndex(requestCtx: Uint8Array): void {
    this.raft.step(message({ type: MessageType.ReadIndex, from: this.raft.id, context: requestCtx }));
  }

  transferLeader(transferee: NodeId): void {
    this.raft.step(message({ type: MessageType.TransferLeader, from: transferee }));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(message({ type: MessageType.Unreachable, from: id }));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(message({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  hasReady(): boolean {
    const soft = this.softState();
    if (soft.lead !== this.previousSoftState.lead || soft.state !== this.previousSoftState.state) return true;
    const hard = this.hardState();
    if (hard.term !== 0 && !sameHardState(hard, this.previousHardState)) return true;
    const log = this.raft.log;
    return (
      log.unstableSnapshot !== undefined ||
      log.unstable().length > 0 ||
      log.hasNextCommitted() ||
      this.raft.messages.length > 0 ||
      this.raft.readStates.length > 0
    );
  }

  ready(): Ready {
    const log = this.raft.log;
    const soft = this.softState();
    const hard = this.hardState();
    const softChanged = soft.lead !== this.previousSoftState.lead || soft.state !== this.previousSoftState.state;
    const hardChanged = !sameHardState(hard, this.previousHardState);
    const entries = log.unstable().slice();
    const messages: Message[] = [];
    const messagesAfterPersist: Message[] = [];
    for (const m of this.raft.messages) {
      const eager = this.raft.state === StateType.Leader && leaderEagerTypes.has(m.type);
      (eager ? messages : messagesAfterPersist).push(m);
    }
    this.raft.messages = [];
    const ready: Ready = {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged ? hard : undefined,
      readStates: this.raft.readStates,
      entries,
      snapshot: log.unstableSnapshot,
      committedEntries: log.nextCommitted(maxCommittedBytesPerReady),
      messages,
      messagesAfterPersist,
      mustSync: entries.length > 0 || hard.term !== this.previousHardState.term || hard.vote !== this.previousHardState.vote,
    };
    this.raft.readStates = [];
    if (softChanged) this.previousSoftState = soft;
    return ready;
  }

  /** The caller carried out `ready` (persisted, sent, applied). */
  advance(ready: Ready): void {
    const log = this.raft.log;
    if (ready.hardState !== undefined) this.previousHardState = ready.hardState;
    if (ready.snapshot !== undefined) {
      log.stableSnapshotTo(ready.snapshot.metadata.index);
      if (ready.snapshot.metadata.index > log.applied) log.applied = ready.snapshot.metadata.index;
    }
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) log.stableTo(lastEntry.index, lastEntry.term);
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted !== undefined) log.appliedTo(lastCommitted.index);
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, { match: number; next: number; state: number; isLearner: boolean }>();
    if (this.raft.state === StateType.Leader) {
      for (const [id, p] of this.raft.progress) progress.set(id, { match: p.match, next: p.next, state: p.state, isLearner: p.isLearner });
    }
    return {
      id: this.raft.id,
      hardState: this.hardState(),
      softState: this.softState(),
      applied: this.raft.log.applied,
      leadTransferee: this.raft.leadTransferee,
      progress,
    };
  }

  /** The highest index this member knows to be committed. */
  get committed(): number {
    return this.raft.log.committed;
  }

  /** The configuration as this member currently sees it. */
  confState(): ConfState {
    return this.raft.confState();
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, state: this.raft.state };
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed };
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export { NONE };
