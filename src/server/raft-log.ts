// The log of a clustered member: the Raft core plus the IO it asks for. Each
// Ready is carried out in etcd's order, in one function you can read top to
// bottom (processReady): snapshot before entries, the leader's appends leave
// in parallel with its own disk write, everything that depends on this
// member's persisted state leaves only after the fdatasync, then committed
// entries go to apply, then advance. A failed save is fatal.
import { LogLimiter } from "../log-limiter.ts";
import { RawNode } from "../raft/raw-node.ts";
import { MemoryStorage } from "../raft/memory-storage.ts";
import {
  MessageType,
  ProposalDroppedError,
  StateType,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Snapshot,
} from "../raft/types.ts";
import type { Clock, Logger, Random, Timer } from "../ports.ts";
import { etcdError } from "../errors.ts";
import type { CrashPoints } from "../storage/crash-points.ts";
import { mutant } from "../mutants.ts";
import { hexOf } from "../bytes.ts";

/** What a call into the core returns once it threw and stopped the member. */
const coreStopped = Symbol("raft core stopped");

/** How long a ReadIndex round waits for its answer before asking again (etcd's readIndexRetryTime). */
const readIndexRetryMs = 500;

/** The slice of the WAL the log needs. */
export interface RaftLogWal {
  save(hardState: HardState | undefined, entries: Entry[], options: { sync: boolean }): Promise<void>;
  saveSnapshot(snapshot: { index: number; term: number }): Promise<void>;
  releaseTo(index: number): Promise<void>;
}

export interface RaftLogOptions {
  id: NodeId;
  wal: RaftLogWal;
  clock: Clock;
  random: Random;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  requestTimeoutMs: number;
  preVote: boolean;
  /** What the WAL held at start: hard state, entries after the snapshot, the snapshot. */
  restored: { hardState?: HardState; entries: Entry[]; snapshot?: Snapshot; confState: ConfState };
  applied: number;
  /**
   * Entries kept in memory behind the applied index for followers a little
   * behind (--experimental-snapshot-catchup-entries). A voter alone keeps no
   * more than twice that: it has nobody to catch up, and a member added later
   * starts from a snapshot.
   */
  catchUpEntries: number;
  /** Fault injection for tests (snapshot-after-save, snapshot-after-release). */
  crashPoints?: CrashPoints;
  /** Debug lines for each linearizable-read round (--log-level debug). */
  logger?: Logger;
  send: (messages: Message[]) => void;
  /**
   * A snapshot received from the leader, made durable before the WAL records
   * it (so a restart between the two still finds the data the WAL names).
   */
  persistSnapshot: (snapshot: Snapshot) => Promise<void>;
  /**
   * Committed entries, in index order, after the snapshot if there is one (the
   * caller installs it first); conf changes included (the caller applies them
   * via applyConfChange).
   */
  apply: (entries: Entry[], snapshot: Snapshot | undefined) => void | Promise<void>;
  onLeaderChange?: (leader: NodeId, isLeader: boolean) => void;
  fatal: (error: unknown) => void;
}

interface PendingRead {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A ReadIndex round out: an answer to any context it was sent with (one per copy) settles it. */
interface ReadRound extends PendingRead {
  id: string;
  contexts: string[];
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export class RaftLog {
  readonly storage = new MemoryStorage();
  private readonly node: RawNode;
  private readonly ticker: Timer;
  private processing = false;
  private scheduled = false;
  private failed = false;
  private leaderId: NodeId = 0;
  private termValue = 0;
  private commitIndexValue = 0;
  private appliedIndexValue: number;
  /** Reads waiting for the next ReadIndex round, and the round out now (at most one). */
  private queuedReads: PendingRead[] = [];
  private readRound: ReadRound | undefined;
  private readonly readsWaitingForApply: Array<{ index: number; resolve: () => void }> = [];
  private nextReadId = 1;
  /**
   * Makes this life's read contexts unlike any of an earlier life's: a leader
   * answers a context it has already answered in its term with the same
   * index (a resent copy), so a member restarted within one leader's term
   * whose counter began again was given the index of a read from before its
   * crash, and served a stale linearizable read (sim --servers seed 23, the
   * regression test in test/sim/node-sim.test.ts).
   * etcd's read request ids carry the member's start time for the same reason.
   */
  private readonly lifeId: string;
  /** Read indexes received so far (the read-index-reused mutant serves every later read at once). */
  private readsServed = 0;
  private snapshotIndexValue: number;
  /** The only voter, with no learner: it commits, and confirms its leadership, by itself. */
  private alone: boolean;
  /** At most one warning a second about Raft messages dropped as inconsistent. */
  private readonly droppedLog: LogLimiter;

  constructor(private readonly options: RaftLogOptions) {
    this.droppedLog = new LogLimiter(() => options.clock.nowMs());
    this.lifeId = hexOf(options.random.bytes(8));
    const { restored } = options;
    // The configuration enters through the snapshot slot: the latest snapshot's
    // metadata if there is one, else an empty one at index 0 with the applied
    // configuration.
    this.storage.applySnapshot({
      metadata: {
        index: restored.snapshot?.metadata.index ?? 0,
        term: restored.snapshot?.metadata.term ?? 0,
        confState: restored.confState,
      },
      data: restored.snapshot?.data ?? new Uint8Array(0),
    });
    if (restored.hardState !== undefined) this.storage.setHardState(restored.hardState);
    this.storage.append(restored.entries);
    this.appliedIndexValue = options.applied;
    this.snapshotIndexValue = restored.snapshot?.metadata.index ?? 0;
    const electionTick = Math.max(2, Math.round(options.electionTimeoutMs / options.heartbeatIntervalMs));
    this.node = new RawNode({
      id: options.id,
      electionTick,
      heartbeatTick: 1,
      preVote: options.preVote,
      checkQuorum: true,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 4096 / 8,
      readOnlyOption: "safe",
      randomInt: (bound) => options.random.int(bound),
      storage: this.storage,
      applied: options.applied,
    });
    this.alone = isAlone(this.node.confState(), options.id);
    this.ticker = options.clock.setInterval(options.heartbeatIntervalMs, () => {
      if (!this.failed && this.coreUnlessStopped(() => this.node.tick()) !== coreStopped) this.schedule();
    });
  }

  get leader(): NodeId {
    return this.leaderId;
  }

  get isLeader(): boolean {
    return this.leaderId === this.options.id;
  }

  get term(): number {
    return this.termValue;
  }

  get lastIndex(): number {
    return this.storage.lastIndex();
  }

  get commitIndex(): number {
    return this.commitIndexValue;
  }

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  /** Hands a proposal to Raft; throws etcd's error when it cannot be taken. */
  propose(data: Uint8Array): void {
    this.assertRunning();
    try {
      this.core(() => this.node.propose(data));
    } catch (error) {
      if (error instanceof ProposalDroppedError) throw etcdError(this.leaderId === 0 ? "noLeader" : "leaderChanged");
      throw error;
    }
    this.schedule();
  }

  proposeConfChange(change: ConfChange): void {
    this.assertRunning();
    this.core(() => this.node.proposeConfChange(change));
    this.schedule();
  }

  applyConfChange(change: ConfChange): ConfState {
    const confState = this.core(() => this.node.applyConfChange(change));
    this.alone = isAlone(confState, this.options.id);
    return confState;
  }

  step(message: Message): void {
    if (this.failed) return;
    const dropped = this.coreUnlessStopped(() => this.node.step(message));
    if (dropped === coreStopped) return;
    if (dropped !== undefined) this.logDropped(message, dropped);
    this.schedule();
  }

  /**
   * A message Raft refused (network-message.ts). One warning per interval at
   * most, with the count since the last: a flood of forged messages must not
   * become a flood of log lines.
   */
  private logDropped(message: Message, reason: string): void {
    const fields = { "remote-peer-id": message.from.toString(16), "message-type": MessageType[message.type] ?? message.type, term: message.term, reason };
    if (message.type === MessageType.Prop) return this.options.logger?.debug("dropped a forwarded proposal", fields);
    this.droppedLog.warn(this.options.logger, "dropped a Raft message inconsistent with local state", fields);
  }

  reportUnreachable(id: NodeId): void {
    this.core(() => this.node.reportUnreachable(id));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.core(() => this.node.reportSnapshot(id, ok));
    this.schedule();
  }

  transferLeader(transferee: NodeId): void {
    this.core(() => this.node.transferLeader(transferee));
    this.schedule();
  }

  campaign(): void {
    this.core(() => this.node.campaign());
    this.schedule();
  }

  /**
   * Linearizable read barrier (ReadIndex): resolves once this member has
   * applied everything committed when the read was issued, as confirmed by a
   * quorum for the current leader.
   */
  readBarrier(): Promise<void> {
    this.assertRunning();
    if (mutant("read-index-reused") && this.readsServed > 0) return Promise.resolve(); // MUTANT: the earlier read's index stands
    // A leader alone needs no round: its commit index is the read index (as
    // Raft answers a singleton's ReadIndex), due once applied.
    if (this.alone && this.isLeader) {
      const index = this.node.committed;
      if (index <= this.appliedIndexValue) return Promise.resolve();
      return new Promise<void>((resolve) => this.waitForApply(index, resolve));
    }
    return new Promise<void>((resolve, reject) => {
      this.queuedReads.push({ resolve, reject });
      if (this.readRound === undefined) this.startReadRound();
    });
  }

  /**
   * One ReadIndex request for every read queued so far (etcd's read loop):
   * reads that arrive while a round is out wait for the next one, since the
   * index must be fixed after they began.
   */
  private startReadRound(): void {
    if (this.queuedReads.length === 0 || this.failed) return;
    const waiters = this.queuedReads;
    this.queuedReads = [];
    const id = `${this.options.id}:${this.lifeId}:${this.nextReadId++}`;
    this.options.logger?.debug("read round", { id, reads: waiters.length, leader: this.leaderId.toString(16), term: this.termValue, commit: this.commitIndexValue, applied: this.appliedIndexValue });
    let retry: Timer | undefined;
    const settle = () => {
      timer.cancel();
      retry?.cancel();
    };
    const round: ReadRound = {
      id,
      contexts: [],
      resolve: () => {
        settle();
        for (const waiter of waiters) waiter.resolve();
      },
      reject: (error) => {
        settle();
        for (const waiter of waiters) waiter.reject(error);
      },
    };
    this.readRound = round;
    // A request sent while there is no leader is dropped by Raft, and one on
    // its way to the leader can be lost with a connection: as etcd's read loop
    // does, ask again every readIndexRetryMs (a late answer to an earlier copy
    // is as good), and give up after the request timeout. Each copy has a new
    // context: a leader confirms a context with acknowledgements of
    // heartbeats that carried it, and those of an earlier copy (late in a
    // socket, say of a leader resumed from SIGSTOP) would confirm a copy sent
    // after the leadership they prove may have ended (L1 seeds 1036, 3038).
    const send = () => {
      const context = round.contexts.length === 0 ? id : `${id}.${round.contexts.length}`;
      round.contexts.push(context);
      this.core(() => this.node.readIndex(textEncoder.encode(context)));
      this.schedule();
    };
    const resend = () => {
      if (this.readRound !== round || this.failed) return;
      this.options.logger?.debug("read round resent", { id, copy: round.contexts.length, leader: this.leaderId.toString(16), term: this.termValue });
      send();
      retry = this.options.clock.setTimer(readIndexRetryMs, resend);
    };
    retry = this.options.clock.setTimer(readIndexRetryMs, resend);
    const timer = this.options.clock.setTimer(this.options.requestTimeoutMs, () => {
      if (this.readRound === round) this.endReadRound()?.reject(etcdError("timeout"));
    });
    send();
  }

  /**
   * The round out has its index or failed: it is out no longer, and the reads
   * queued meanwhile go in the next one. Returns it, for the caller to settle.
   */
  private endReadRound(): ReadRound | undefined {
    const round = this.readRound;
    this.readRound = undefined;
    if (this.queuedReads.length > 0) queueMicrotask(() => {
      if (this.readRound === undefined) this.startReadRound();
    });
    return round;
  }

  /** Called by the applier after it applied entries up to `index`. */
  markApplied(index: number): void {
    this.appliedIndexValue = Math.max(this.appliedIndexValue, index);
    while (this.readsWaitingForApply.length > 0 && (this.readsWaitingForApply[0]?.index ?? Infinity) <= this.appliedIndexValue) {
      this.readsWaitingForApply.shift()?.resolve();
    }
    this.compactIfAlone();
  }

  /**
   * A voter alone (no other voter, no learner) lets go of applied entries
   * beyond catchUpEntries without waiting for the next snapshot: up to
   * --snapshot-count of them would otherwise stay in memory for followers it
   * does not have. The in-memory snapshot it records is what Raft offers a
   * member added later (the server sends the backend's current data with it).
   */
  private compactIfAlone(): void {
    const keep = this.options.catchUpEntries;
    const applied = this.appliedIndexValue;
    if (applied - this.storage.firstIndex() < 2 * keep || applied > this.storage.lastIndex()) return;
    if (!this.alone) return;
    if (applied > this.storage.snapshot().metadata.index) this.storage.createSnapshot(applied, this.node.confState(), new Uint8Array(0));
    this.storage.compact(applied - keep);
  }

  get snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  /**
   * Takes a snapshot at the applied index (the backend, made durable by the
   * caller, holds everything up to it): the WAL records it and drops the
   * segments before it, and memory keeps only `catchUpEntries` entries behind
   * it for followers that are a little behind (etcd's snapshot and compaction).
   */
  async snapshot(catchUpEntries: number): Promise<void> {
    // Not past the log's last entry: a backend received from the leader may be
    // ahead of its snapshot's index (it kept applying while sending), and the
    // entries between have not arrived yet (sim --servers seed 26, before its
    // read contexts changed: 'snapshot 280 is out of bound lastindex(249)'
    // stopped the member). The backend holds everything up to the index taken.
    const index = Math.min(this.appliedIndexValue, this.storage.lastIndex());
    if (this.failed || index <= this.snapshotIndexValue) return;
    try {
      // A voter alone may have recorded this index in memory already (compactIfAlone).
      const recorded = this.storage.snapshot();
      const snapshot = recorded.metadata.index === index ? recorded : this.storage.createSnapshot(index, this.node.confState(), new Uint8Array(0));
      await this.options.wal.saveSnapshot({ index, term: snapshot.metadata.term });
      this.options.crashPoints?.hit("snapshot-after-save");
      this.snapshotIndexValue = index;
      const compactTo = index - catchUpEntries;
      if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
      await this.options.wal.releaseTo(index);
      this.options.crashPoints?.hit("snapshot-after-release");
    } catch (error) {
      // The caller stops the member; Raft stops ticking at once.
      this.failed = true;
      this.ticker.cancel();
      throw error;
    }
  }

  stop(): void {
    this.ticker.cancel();
    this.failed = true;
    const round = this.readRound;
    this.readRound = undefined;
    round?.reject(etcdError("stopped"));
    for (const read of this.queuedReads) read.reject(etcdError("stopped"));
    this.queuedReads = [];
  }

  status() {
    return this.node.status();
  }

  private assertRunning(): void {
    if (this.failed) throw etcdError("stopped");
  }

  private schedule(): void {
    if (this.scheduled || this.processing) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.processReadies();
    });
  }

  /**
   * A call into the Raft core. The core throws only on a broken invariant
   * (network input is checked before it gets there, network-message.ts): a
   * bug, so the member stops as etcd's raft panics, instead of answering one
   * caller with it and going on.
   */
  private core<T>(call: () => T): T {
    try {
      return call();
    } catch (error) {
      // A proposal the core refused (no leader, a transfer or a configuration
      // change under way) is an operating error: its caller answers it.
      if (error instanceof ProposalDroppedError) throw error;
      this.failWith(new RaftFailure(error));
      throw etcdError("stopped");
    }
  }

  /** `core` for callers with nobody to answer the error to (the ticker, the peer port). */
  private coreUnlessStopped<T>(call: () => T): T | typeof coreStopped {
    try {
      return this.core(call);
    } catch {
      return coreStopped;
    }
  }

  /** A failed save or apply: the log stops, and the member with it. */
  private failWith(error: unknown): void {
    this.failed = true;
    this.ticker.cancel();
    this.options.fatal(error);
  }

  private async processReadies(): Promise<void> {
    if (this.processing || this.failed) return;
    this.processing = true;
    try {
      while (!this.failed && this.node.hasReady()) await this.processReady(this.node.ready());
    } catch (error) {
      this.failWith(error);
    } finally {
      this.processing = false;
    }
  }

  /** One Ready, in etcd's order. */
  private async processReady(ready: Ready): Promise<void> {
    if (ready.softState !== undefined) this.noteSoftState(ready.softState.lead, ready.softState.state);
    if (ready.hardState !== undefined) {
      this.termValue = ready.hardState.term;
      this.commitIndexValue = ready.hardState.commit;
    }
    this.releaseReadStates(ready);

    // 1. A snapshot is persisted before entries that follow it: its data
    // first, then the WAL record naming it.
    if (ready.snapshot !== undefined) {
      await this.options.persistSnapshot(ready.snapshot);
      await this.options.wal.saveSnapshot({ index: ready.snapshot.metadata.index, term: ready.snapshot.metadata.term });
      // The data now lives on disk; memory keeps only the metadata.
      this.storage.applySnapshot({ metadata: ready.snapshot.metadata, data: new Uint8Array(0) });
      this.snapshotIndexValue = ready.snapshot.metadata.index;
    }
    // 2. The leader's appends leave now, in parallel with its own write.
    if (ready.messages.length > 0) this.options.send(ready.messages);
    // 3. Hard state and entries reach the disk (one fdatasync for the batch).
    // A hard state that moves only the commit index need not be durable
    // (etcd's MustSync): it is written in order before any later save, and
    // nothing waits for it.
    // (Entries always need the sync: the second branch has a hard state only.)
    if (ready.mustSync) {
      await this.options.wal.save(ready.hardState, ready.entries, { sync: true });
    } else if (ready.hardState !== undefined) {
      this.options.wal.save(ready.hardState, [], { sync: false }).catch((error: unknown) => this.failWith(error));
    }
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    if (ready.entries.length > 0) this.storage.append(ready.entries);
    // 4. What depends on this member's durable state leaves only now.
    if (ready.messagesAfterPersist.length > 0) this.options.send(ready.messagesAfterPersist);
    // 5. Apply.
    if (ready.committedEntries.length > 0 || ready.snapshot !== undefined) {
      await this.options.apply(ready.committedEntries, ready.snapshot);
    }
    this.node.advance(ready);
  }

  private noteSoftState(lead: NodeId, state: StateType): void {
    if (lead === this.leaderId) return;
    this.leaderId = lead;
    this.options.onLeaderChange?.(lead, state === StateType.Leader);
    // A read round out when the leader changes fails, as etcd's read loop
    // fails it: the old leader may never answer, and an answer it gives
    // while stepping down may be from before the new leader's writes (L1 seed
    // 1036: a leader resumed from SIGSTOP served a read from its own stale
    // commit index in the batch that made it a follower). Clients retry.
    this.endReadRound()?.reject(etcdError("leaderChanged"));
  }

  private releaseReadStates(ready: Ready): void {
    for (const state of ready.readStates) {
      const context = textDecoder.decode(state.requestCtx);
      const answers = this.readRound?.contexts.includes(context) === true;
      this.options.logger?.debug("read index", { id: context, index: state.index, pending: answers, applied: this.appliedIndexValue, leader: this.leaderId.toString(16), term: this.termValue });
      if (!answers) continue;
      // Answered: no more copies (its timers stop when it settles, after the apply if need be).
      const read = this.endReadRound() as ReadRound;
      this.readsServed++;
      if (state.index <= this.appliedIndexValue) read.resolve();
      else this.waitForApply(state.index, read.resolve);
    }
  }

  /**
   * A read due once `index` is applied. Kept in index order for markApplied:
   * read indexes mostly grow, so the queue is sorted only when one does not.
   */
  private waitForApply(index: number, resolve: () => void): void {
    const waiting = this.readsWaitingForApply;
    const last = waiting[waiting.length - 1];
    waiting.push({ index, resolve });
    if (last !== undefined && last.index > index) waiting.sort((a, b) => a.index - b.index);
  }
}

function isAlone(confState: ConfState, id: NodeId): boolean {
  return confState.learners.length === 0 && confState.voters.length === 1 && confState.voters[0] === id;
}

/** The Raft core threw: one of its invariants is broken, a bug, fatal. */
export class RaftFailure extends Error {
  constructor(override readonly cause: unknown) {
    super(`raft: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}
