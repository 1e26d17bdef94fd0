// The log of a single-member cluster: proposals are appended to the WAL in
// batches, one fdatasync per batch (group commit), and only then handed to
// apply. This is the seat the Raft core takes in a cluster: the same
// "persist, then commit, then apply" order, with a quorum of one.
import { EntryType, type Entry, type HardState } from "../raft/types.ts";
import type { CrashPoints } from "../storage/crash-points.ts";
import type { ServerLog } from "./server-log.ts";

/** The slice of the WAL the log needs. */
export interface LogWal {
  save(hardState: HardState | undefined, entries: Entry[], options: { sync: boolean }): Promise<void>;
  saveSnapshot(snapshot: { index: number; term: number }): Promise<void>;
  releaseTo(index: number): Promise<void>;
}

export interface LocalLogOptions {
  wal: LogWal;
  memberId: number;
  term: number;
  lastIndex: number;
  /** The WAL's latest snapshot index (0 when none). */
  snapshotIndex?: number;
  /** Fault injection for tests (snapshot-after-save, snapshot-after-release). */
  crashPoints?: CrashPoints;
  /** Called with entries that are durable, in index order. */
  apply: (entries: Entry[]) => void;
  /** A failed WAL write: the node must stop; nothing after it is acknowledged. */
  fatal: (error: unknown) => void;
  /** Upper bound of entries written (and synced) in one batch. */
  batchEntriesMax?: number;
}

export class LocalLog implements ServerLog {
  private readonly queue: Uint8Array[] = [];
  private flushing = false;
  private failed = false;
  private lastIndexValue: number;
  private appliedIndex = 0;
  private snapshotIndexValue: number;
  private readonly batchEntriesMax: number;

  constructor(private readonly options: LocalLogOptions) {
    this.lastIndexValue = options.lastIndex;
    this.snapshotIndexValue = options.snapshotIndex ?? 0;
    this.batchEntriesMax = options.batchEntriesMax ?? 4096;
  }

  get lastIndex(): number {
    return this.lastIndexValue;
  }

  get term(): number {
    return this.options.term;
  }

  /** A single member is always its own leader. */
  get leader(): number {
    return this.options.memberId;
  }

  /** Apply follows the sync directly, so applied state is always linearizable. */
  readBarrier(): Promise<void> {
    return Promise.resolve();
  }

  markApplied(index: number): void {
    this.appliedIndex = Math.max(this.appliedIndex, index);
  }

  get snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  /** A single member keeps no entries in memory: the WAL records the snapshot and drops older segments. */
  async snapshot(): Promise<void> {
    const index = this.appliedIndex;
    if (index <= this.snapshotIndexValue) return;
    await this.options.wal.saveSnapshot({ index, term: this.options.term });
    this.options.crashPoints?.hit("snapshot-after-save");
    this.snapshotIndexValue = index;
    await this.options.wal.releaseTo(index);
    this.options.crashPoints?.hit("snapshot-after-release");
  }

  stop(): void {
    this.failed = true;
  }

  /** Queues one entry's data; it is applied once it is durable. */
  propose(data: Uint8Array): void {
    if (this.failed) throw new Error("the log stopped after a failed write");
    this.queue.push(data);
    if (!this.flushing) {
      this.flushing = true;
      // Let the proposals of this turn of the event loop join the batch.
      queueMicrotask(() => void this.flush());
    }
  }

  /** Appends the term's first (empty) entry, as a newly elected leader does. */
  proposeEmpty(): void {
    this.propose(new Uint8Array(0));
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failed) {
        const batch = this.queue.splice(0, this.batchEntriesMax);
        const entries: Entry[] = batch.map((data) => ({
          index: ++this.lastIndexValue,
          term: this.options.term,
          type: EntryType.Normal,
          data,
        }));
        const hardState: HardState = { term: this.options.term, vote: this.options.memberId, commit: this.lastIndexValue };
        // Durability first: nothing below runs until the batch is fdatasynced.
        await this.options.wal.save(hardState, entries, { sync: true });
        this.options.apply(entries);
      }
    } catch (error) {
      this.failed = true;
      this.options.fatal(error);
    } finally {
      this.flushing = false;
    }
  }
}
