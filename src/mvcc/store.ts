// The MVCC store: revisions over the key index and the backend (etcd's
// mvcc.store). Every write transaction gets main revision current+1 and one
// sub revision per change inside it; a transaction without changes leaves the
// revision alone. Reads name a revision and see the newest version of each key
// at or before it. Deterministic and synchronous: no clock, no timers, no IO
// except through the backend.
import type { Event, KeyValue } from "../gen/mvccpb/kv_pb.ts";
import { etcdError } from "../errors.ts";
import { type Backend, metaKeys } from "../storage/backend.ts";
import type { CrashPoints } from "../storage/crash-points.ts";
import { crc32c } from "../storage/crc32c.ts";
import { KeyHistory, KeyIndex } from "./key-index.ts";
import { keyString } from "./key-bytes.ts";
import { type CommittedHook, type RangeOptions, type RangeResult, rowToKeyValue } from "./kv.ts";
import { WriteTxn } from "./write-txn.ts";

export type { CommittedHook, RangeOptions, RangeResult } from "./kv.ts";

/** etcd's default number of revisions removed per compaction batch. */
export const compactionBatchLimitDefault = 1000;
/** The revision of an empty store. */
export const initialRevision = 1;
/** compactRevision of a store never compacted (etcd reports -1 in HashKV). */
export const neverCompacted = -1;
/** Rows read per chunk when rebuilding the key index (etcd's restoreChunkKeys). */
export const restoreChunkRows = 10_000;

export interface MvccStoreOptions {
  compactionBatchLimit?: number;
  onCommitted?: CommittedHook;
  /** Fault injection for tests (compaction-after-schedule, compaction-before-batch-commit). */
  crashPoints?: CrashPoints;
}

export class MvccStore {
  /**
   * Revision of the last write transaction that changed something. An empty
   * store is at revision 1, so the first write gets 2 (etcd).
   */
  currentRevision = initialRevision;
  /** Reads below this revision fail with "compacted"; -1 until the first compaction (etcd). */
  compactRevision = neverCompacted;
  index = new KeyIndex();
  readonly compactionBatchLimit: number;
  /** Set by the watch layer; receives every committed transaction's events in order. */
  onCommitted: CommittedHook | undefined;
  /** Keys attached to a lease when the store was opened, for the lessor to re-attach. */
  readonly restoredLeases: { key: Uint8Array; lease: bigint }[] = [];

  private readonly mainsScratch: number[] = [];
  private readonly subsScratch: number[] = [];
  private readonly crashPoints: CrashPoints | undefined;

  constructor(
    readonly backend: Backend,
    options: MvccStoreOptions = {},
  ) {
    this.compactionBatchLimit = options.compactionBatchLimit ?? compactionBatchLimitDefault;
    this.onCommitted = options.onCommitted;
    this.crashPoints = options.crashPoints;
    this.restore();
  }

  // --- reads ------------------------------------------------------------

  /** A read at the current revision (or `options.revision`). See KeyIndex.visit for `end`. */
  range(key: Uint8Array, end: Uint8Array | undefined, options: RangeOptions = {}): RangeResult {
    return this.rangeAt(key, end, this.currentRevision, options);
  }

  /** Range as seen by a transaction whose newest revision is `currentRevision`. */
  rangeAt(key: Uint8Array, end: Uint8Array | undefined, currentRevision: number, options: RangeOptions): RangeResult {
    let revision = options.revision ?? 0;
    if (revision > currentRevision) throw etcdError("futureRevision");
    if (revision <= 0) revision = currentRevision;
    if (revision < this.compactRevision) throw etcdError("compacted");

    const mains = this.mainsScratch;
    const subs = this.subsScratch;
    mains.length = 0;
    subs.length = 0;
    this.index.visit(key, end, revision, (_history, found) => {
      mains.push(found.main);
      subs.push(found.sub);
    });
    const count = mains.length;
    if (options.countOnly === true || count === 0) return { kvs: [], count, revision: currentRevision };
    const limit = options.limit !== undefined && options.limit > 0 && options.limit < count ? options.limit : count;
    const kvs: KeyValue[] = new Array(limit);
    for (let i = 0; i < limit; i++) kvs[i] = this.readKeyValue(mains[i] as number, subs[i] as number);
    return { kvs, count, revision: currentRevision };
  }

  /** The stored key-value at revision (main, sub); a missing row is a broken invariant. */
  readKeyValue(main: number, sub: number): KeyValue {
    const row = this.backend.getKv(main, sub);
    if (row === undefined) throw new Error(`assertion failed: key index names revision ${main}.${sub} missing from the backend`);
    return rowToKeyValue(row);
  }

  // --- writes -----------------------------------------------------------

  /** Starts a write transaction; call `end()` on it when done (synchronously). */
  write(): WriteTxn {
    return new WriteTxn(this, this.currentRevision);
  }

  /** Called by WriteTxn.end. */
  finishWrite(events: Event[]): number {
    if (events.length === 0) return this.currentRevision;
    this.currentRevision++;
    this.onCommitted?.(events, this.currentRevision);
    return this.currentRevision;
  }

  // --- compaction -------------------------------------------------------

  /**
   * Removes every revision not needed to read at `revision` or later. Records
   * the scheduled mark first (committed), so a restart finishes an interrupted
   * compaction, then the finished mark.
   */
  compact(revision: number): void {
    if (revision <= this.compactRevision) throw etcdError("compacted");
    if (revision > this.currentRevision) throw etcdError("futureRevision");
    this.compactRevision = revision;
    this.backend.setMetaNumber(metaKeys.scheduledCompactRevision, revision);
    this.backend.forceCommit();
    this.crashPoints?.hit("compaction-after-schedule");
    this.finishCompaction(revision);
  }

  private finishCompaction(revision: number): void {
    const keep = new Set<string>();
    this.index.compact(revision, (main, sub) => keep.add(`${main}.${sub}`));
    let afterMain = 0;
    let afterSub = 0;
    const limit = this.compactionBatchLimit;
    for (;;) {
      const batch = this.backend.scanRevisions(afterMain, afterSub, revision, limit);
      for (const { main, sub } of batch) {
        if (!keep.has(`${main}.${sub}`)) this.backend.deleteKvRevision(main, sub);
      }
      if (batch.length < limit) break;
      const last = batch[batch.length - 1] as { main: number; sub: number };
      afterMain = last.main;
      afterSub = last.sub;
      // Bounded batches: commit each so no transaction grows with the history.
      this.crashPoints?.hit("compaction-before-batch-commit");
      this.backend.forceCommit();
    }
    this.backend.setMetaNumber(metaKeys.finishedCompactRevision, revision);
  }

  // --- hash -------------------------------------------------------------

  /**
   * CRC-32C over every stored revision at or before `revision` (0 = current),
   * for comparing members (HashKV). Members at the same revision and compact
   * revision hold the same rows, so they hash equal. `pause` is awaited
   * between chunks of rows (a caller on an event loop yields there): rows at
   * or below `revision` do not change meanwhile, unless a compaction removes
   * some, in which case the hash is taken again.
   */
  async hashKV(revision: number, pause: () => Promise<void> = () => Promise.resolve()): Promise<{ hash: number; compactRevision: number; revision: number }> {
    for (;;) {
      if (revision > 0 && revision <= this.compactRevision) throw etcdError("compacted");
      if (revision > this.currentRevision) throw etcdError("futureRevision");
      const compactRevision = this.compactRevision;
      const upTo = revision === 0 ? this.currentRevision : revision;
      let hash = 0;
      const numbers = new DataView(new ArrayBuffer(40));
      const numberBytes = new Uint8Array(numbers.buffer);
      for (const rows of this.backend.rowPages(upTo, restoreChunkRows)) {
        for (const row of rows) {
          numbers.setBigInt64(0, BigInt(row.main));
          numbers.setBigInt64(8, BigInt(row.sub));
          numbers.setBigInt64(16, BigInt(row.createRevision));
          numbers.setBigInt64(24, BigInt(row.version));
          numbers.setBigInt64(32, row.lease);
          hash = crc32c(hash, numberBytes);
          hash = crc32c(hash, row.tombstone ? tombstoneMark : liveMark);
          hash = crc32c(hash, row.key);
          hash = crc32c(hash, row.value);
        }
        await pause();
      }
      if (this.compactRevision === compactRevision) return { hash, compactRevision, revision: upTo };
    }
  }

  // --- restore ----------------------------------------------------------

  /** Rebuilds the key index from the backend, then finishes an interrupted compaction. */
  /**
   * Forgets the in-memory index and rebuilds it from the backend, after the
   * backend's file was replaced by a snapshot (Backend.reopenAfter).
   */
  reload(): void {
    this.index = new KeyIndex();
    this.restoredLeases.length = 0;
    this.currentRevision = initialRevision;
    this.restore();
  }

  private restore(): void {
    this.compactRevision = this.backend.metaNumber(metaKeys.finishedCompactRevision, neverCompacted);
    const scheduled = this.backend.metaNumber(metaKeys.scheduledCompactRevision, neverCompacted);
    const leases = new Map<KeyHistory, bigint>();
    let afterMain = 0;
    let afterSub = 0;
    let current = initialRevision;
    for (;;) {
      const rows = this.backend.scanIndexRows(afterMain, afterSub, restoreChunkRows);
      for (const row of rows) {
        const name = keyString(row.key);
        let history = this.index.historyNamed(name);
        if (history !== undefined) {
          if (row.tombstone) history.tombstone(row.main, row.sub);
          else history.put(row.main, row.sub);
        } else if (!row.tombstone) {
          history = new KeyHistory(name);
          history.restore(row.createRevision, row.main, row.sub, row.version);
          this.index.insert(history);
        }
        if (history !== undefined) {
          if (!row.tombstone && row.lease !== 0n) leases.set(history, row.lease);
          else leases.delete(history);
        }
        current = row.main;
      }
      if (rows.length < restoreChunkRows) break;
      const last = rows[rows.length - 1] as { main: number; sub: number };
      afterMain = last.main;
      afterSub = last.sub;
    }
    // Histories were built directly above: the index counts its live keys once.
    this.index.recountLive();
    // Compaction may have removed every row up to the compact revision.
    this.currentRevision = Math.max(current, this.compactRevision);
    for (const [history, lease] of leases) this.restoredLeases.push({ key: history.key, lease });
    if (scheduled > this.compactRevision) {
      this.compactRevision = scheduled;
      this.finishCompaction(scheduled);
      this.backend.forceCommit();
    }
  }
}

const tombstoneMark = new Uint8Array([1]);
const liveMark = new Uint8Array([0]);

