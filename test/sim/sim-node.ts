// One simulated Raft node: a RawNode over a MemoryStorage rebuilt from a
// simulated disk, driven by the Ready loop in the documented order:
//   1-2. write the snapshot, entries and hard state; if mustSync, fdatasync
//        (which takes simulated time, during which the node keeps stepping
//        messages and ticks, as etcd's node loop does);
//   3.   send `messages` at once, `messagesAfterPersist` only once durable;
//   4.   apply the snapshot and committed entries, then advance.
// A crash drops the RawNode and whatever the disk had not synced; a restart
// replays the disk. Mutants (deliberate bugs) exist to prove the checkers bite.

import type { SimClock } from "../../runtime/sim/clock.ts";
import { SimDisk } from "../../runtime/sim/disk.ts";
import type { Prng } from "../../runtime/sim/prng.ts";
import { type RaftRecord, replayRaftRecords, storageFromDisk } from "../../runtime/sim/raft-disk.ts";
import { CompactedError, type MemoryStorage } from "../../src/raft/memory-storage.ts";
import type { ConfState, Entry, HardState, Message, NodeId, RaftConfig, ReadState, Ready } from "../../src/raft/types.ts";
import { StateType } from "../../src/raft/types.ts";
import type { SafetyChecker } from "./checker.ts";
import { decodeMachineState, encodeMachineState, type MachineState } from "./codec.ts";
import type { Swarm } from "./swarm.ts";
import type { Trace } from "./trace.ts";

/** The RawNode surface the simulator drives. */
export interface RaftNodeApi {
  tick(): void;
  campaign(): void;
  propose(data: Uint8Array): void;
  step(message: Message): void;
  readIndex(context: Uint8Array): void;
  transferLeader(transferee: NodeId): void;
  reportUnreachable(id: NodeId): void;
  reportSnapshot(id: NodeId, ok: boolean): void;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
}

/**
 * Deliberately broken node loops:
 * - sendBeforeSync: sends messagesAfterPersist (votes, append acks) before
 *   the write is durable, so a crash can take back a promise;
 * - forgetVote: restarts with its vote erased, so it can vote twice in a term.
 */
export type Mutant = "sendBeforeSync" | "forgetVote";

export interface NodeEnvironment {
  clock: SimClock;
  random: Prng;
  checker: SafetyChecker;
  trace: Trace;
  swarm: Swarm;
  mutant: Mutant | undefined;
  createRaft(config: RaftConfig): RaftNodeApi;
  raftConfig(id: NodeId, storage: MemoryStorage, applied: number): RaftConfig;
  send(from: SimNode, message: Message): void;
  onApplied(node: SimNode, entry: Entry): void;
  onReadState(node: SimNode, readState: ReadState): void;
}

export class SimNode {
  raft: RaftNodeApi | undefined;
  storage!: MemoryStorage;
  readonly disk: SimDisk<RaftRecord>;
  /** Bumped on every crash and start: timers of a past life check it and do nothing. */
  incarnation = 0;
  /** A Ready is being persisted (waiting for fdatasync). */
  busy = false;
  readyScheduled = false;
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  role = StateType.Follower;
  lead: NodeId = 0;
  machine: MachineState = { index: 0, hash: 0 };
  confState: ConfState = { voters: [], learners: [] };
  /** Set when the node became leader: check its log once its first leader Ready is durable. */
  private leaderCheck: { term: number } | undefined;
  crashes = 0;

  constructor(
    readonly id: NodeId,
    bootstrap: readonly RaftRecord[],
    private readonly env: NodeEnvironment,
  ) {
    this.disk = new SimDisk(bootstrap);
  }

  get up(): boolean {
    return this.raft !== undefined;
  }

  start(): void {
    const state = replayRaftRecords(this.disk.allRecords());
    if (this.env.mutant === "forgetVote") state.hardState = { ...state.hardState, vote: 0 };
    const snapshot = state.snapshot;
    if (snapshot === undefined) throw new Error(`node ${this.id} has no snapshot on disk`);
    this.storage = storageFromDisk(state);
    this.machine = decodeMachineState(snapshot.data);
    this.env.checker.observeSnapshotRestore(this.id, this.machine, snapshot.metadata.term);
    this.confState = snapshot.metadata.confState;
    this.hardState = state.hardState;
    this.role = StateType.Follower;
    this.lead = 0;
    this.busy = false;
    this.readyScheduled = false;
    this.leaderCheck = undefined;
    this.incarnation++;
    this.raft = this.env.createRaft(this.env.raftConfig(this.id, this.storage, this.machine.index));
    this.env.trace.add(`n${this.id} start term=${this.hardState.term} vote=${this.hardState.vote} commit=${this.hardState.commit} last=${this.storage.lastIndex()} applied=${this.machine.index}`);
  }

  crash(loseAllUnsynced: boolean): void {
    const unsynced = this.disk.unsyncedCount;
    this.raft = undefined;
    this.incarnation++;
    this.busy = false;
    this.readyScheduled = false;
    this.crashes++;
    const kept = this.disk.crash(this.env.random, loseAllUnsynced);
    this.env.trace.add(`n${this.id} CRASH (${unsynced} unsynced writes, ${loseAllUnsynced ? "all lost" : "a prefix may survive"}; ${kept.length} records left)`);
  }

  /** Takes the next Ready and starts carrying it out. */
  handleReady(): void {
    const raft = this.raft;
    if (raft === undefined) return;
    const ready = raft.ready();
    const { env } = this;
    if (ready.hardState !== undefined) this.hardState = ready.hardState;
    if (ready.softState !== undefined) this.observeSoftState(ready);
    for (const message of ready.messages) env.send(this, message);
    this.write(ready);
    const mustSync = ready.mustSync || ready.snapshot !== undefined;
    if (env.mutant === "sendBeforeSync") for (const message of ready.messagesAfterPersist) env.send(this, message);
    if (!mustSync) {
      this.finishReady(raft, ready);
      return;
    }
    this.busy = true;
    const incarnation = this.incarnation;
    env.clock.setTimer(env.random.between(1, env.swarm.diskSyncMsMax), () => {
      if (this.incarnation !== incarnation) return; // crashed while syncing
      this.disk.sync();
      this.finishReady(raft, ready);
    });
  }

  private observeSoftState(ready: Ready): void {
    const softState = ready.softState;
    if (softState === undefined) return;
    if (softState.state !== this.role || softState.lead !== this.lead) {
      this.env.trace.add(`n${this.id} is ${StateType[softState.state]} lead=${softState.lead} term=${this.hardState.term}`);
    }
    this.role = softState.state;
    this.lead = softState.lead;
    if (softState.state === StateType.Leader) {
      this.env.checker.observeLeader(this.hardState.term, this.id, "became leader");
      this.leaderCheck = { term: this.hardState.term };
    }
  }

  /** Steps 1-2: the page-cache half of persisting (sync comes later). */
  private write(ready: Ready): void {
    if (ready.snapshot !== undefined) {
      const hardState = ready.hardState === undefined ? undefined : { ...ready.hardState };
      this.disk.write({ kind: "installSnapshot", snapshot: ready.snapshot, hardState });
    }
    const first = ready.entries[0];
    if (first !== undefined) {
      this.env.checker.observeAppend(this.id, ready.entries, this.termBefore(first.index, ready));
      this.disk.write({ kind: "entries", entries: [...ready.entries] });
    }
    if (ready.hardState !== undefined) this.disk.write({ kind: "hardState", hardState: { ...ready.hardState } });
  }

  private termBefore(index: number, ready: Ready): number {
    const snapshot = ready.snapshot?.metadata;
    if (snapshot !== undefined && snapshot.index === index - 1) return snapshot.term;
    try {
      return this.storage.term(index - 1);
    } catch {
      return -1;
    }
  }

  /** Once durable: storage, deferred messages, reads, apply, advance. */
  private finishReady(raft: RaftNodeApi, ready: Ready): void {
    const { env } = this;
    if (ready.snapshot !== undefined) this.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) this.storage.append(ready.entries);
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    if (env.mutant !== "sendBeforeSync") for (const message of ready.messagesAfterPersist) env.send(this, message);
    this.checkLeaderLog();
    for (const readState of ready.readStates) env.onReadState(this, readState);
    if (ready.snapshot !== undefined) this.restoreSnapshot(ready);
    for (const entry of ready.committedEntries) {
      this.machine = env.checker.observeApply(this.id, this.hardState.term, this.machine, entry);
      env.onApplied(this, entry);
    }
    raft.advance(ready);
    this.busy = false;
    this.maybeSnapshot();
  }

  private checkLeaderLog(): void {
    const check = this.leaderCheck;
    if (check === undefined) return;
    this.leaderCheck = undefined;
    if (this.role !== StateType.Leader || this.hardState.term !== check.term) return;
    this.env.checker.checkLeaderLog(this.id, check.term, (index) => {
      if (index > this.storage.lastIndex()) return undefined;
      try {
        return this.storage.term(index);
      } catch (error) {
        if (error instanceof CompactedError) return null;
        throw error;
      }
    });
  }

  private restoreSnapshot(ready: Ready): void {
    const snapshot = ready.snapshot;
    if (snapshot === undefined) return;
    const state = decodeMachineState(snapshot.data);
    if (state.index !== snapshot.metadata.index) throw new Error(`snapshot at ${snapshot.metadata.index} holds state ${state.index}`);
    this.env.checker.observeSnapshotRestore(this.id, state, snapshot.metadata.term);
    this.env.trace.add(`n${this.id} installs snapshot ${snapshot.metadata.index}/${snapshot.metadata.term} (applied was ${this.machine.index})`);
    this.machine = state;
    this.confState = snapshot.metadata.confState;
  }

  /** Log compaction: snapshot the applied state, keep a few entries behind it. */
  private maybeSnapshot(): void {
    const { swarm, random } = this.env;
    if (!swarm.compaction) return;
    if (this.machine.index - this.storage.snapshot().metadata.index < swarm.snapshotEveryEntries) return;
    const snapshot = this.storage.createSnapshot(this.machine.index, this.confState, encodeMachineState(this.machine));
    let compactIndex = this.machine.index - random.int(swarm.keepEntriesMax + 1);
    if (compactIndex >= this.storage.firstIndex()) this.storage.compact(compactIndex);
    else compactIndex = this.storage.firstIndex() - 1;
    // A snapshot save is always synced; it also flushes earlier WAL writes.
    this.disk.write({ kind: "localSnapshot", snapshot, compactIndex });
    this.disk.sync();
  }
}
