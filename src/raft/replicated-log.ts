// The log as Raft sees it: what the caller has persisted (RaftStorage) plus
// the unstable tail (entries and possibly a snapshot) not yet handed out for
// persisting, with the commit and applied marks (etcd-io/raft's raftLog).
import { limitSize } from "./entry-size.ts";
import { CompactedError, UnavailableError } from "./storage-errors.ts";
import type { Entry, RaftStorage, Snapshot } from "./types.ts";

export class ReplicatedLog {
  committed: number;
  applied: number;
  /** Index of unstableEntries[0]. */
  private unstableOffset: number;
  private unstableEntries: Entry[] = [];
  private unstableSnapshotValue: Snapshot | undefined;

  constructor(readonly storage: RaftStorage) {
    const firstIndex = storage.firstIndex();
    this.unstableOffset = storage.lastIndex() + 1;
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
  }

  get unstableSnapshot(): Snapshot | undefined {
    return this.unstableSnapshotValue;
  }

  /** Entries not yet handed to the caller to persist. */
  unstable(): Entry[] {
    return this.unstableEntries;
  }

  firstIndex(): number {
    if (this.unstableSnapshotValue !== undefined) return this.unstableSnapshotValue.metadata.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) return this.unstableOffset + this.unstableEntries.length - 1;
    if (this.unstableSnapshotValue !== undefined) return this.unstableSnapshotValue.metadata.index;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** The term of the entry at `index`, or undefined when compacted or beyond the log. */
  term(index: number): number | undefined {
    const dummyIndex = this.firstIndex() - 1;
    if (index < dummyIndex || index > this.lastIndex()) return undefined;
    if (index >= this.unstableOffset && this.unstableEntries.length > 0) {
      return this.unstableEntries[index - this.unstableOffset]?.term;
    }
    const snapshot = this.unstableSnapshotValue;
    if (snapshot !== undefined && index === snapshot.metadata.index) return snapshot.metadata.term;
    try {
      return this.storage.term(index);
    } catch (error) {
      if (error instanceof CompactedError || error instanceof UnavailableError) return undefined;
      throw error;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Entries in [lo, hi), at most maxBytes (always one). Throws CompactedError below the first index. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.firstIndex()) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    let result: Entry[] = [];
    if (lo < this.unstableOffset) {
      result = this.storage.entries(lo, Math.min(hi, this.unstableOffset), maxBytes);
      // Storage gave fewer than asked (size limit): stop there.
      if (result.length < Math.min(hi, this.unstableOffset) - lo) return result;
    }
    if (hi > this.unstableOffset) {
      const from = Math.max(lo, this.unstableOffset) - this.unstableOffset;
      const tail = this.unstableEntries.slice(from, hi - this.unstableOffset);
      result = result.length > 0 ? result.concat(tail) : tail;
    }
    return limitSize(result, maxBytes);
  }

  /** Appends to the unstable tail, replacing any conflicting suffix. Returns the new last index. */
  append(entries: Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = (entries[0] as Entry).index;
    if (after - 1 < this.committed) throw new Error(`raft: append at ${after} is below committed ${this.committed}`);
    if (after === this.unstableOffset + this.unstableEntries.length) {
      this.unstableEntries = this.unstableEntries.concat(entries);
    } else if (after <= this.unstableOffset) {
      // Replaces the whole unstable tail (and, once persisted, the storage suffix).
      this.unstableOffset = after;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, after - this.unstableOffset).concat(entries);
    }
    return this.lastIndex();
  }

  /** The first entry whose term conflicts with the log (or is new), or 0. */
  private findConflict(entries: Entry[]): number {
    for (const entry of entries) if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (or that is
   * compacted): where a follower's log may match the leader's, used for fast
   * backtracking of rejected appends.
   */
  findConflictByTerm(index: number, term: number): number {
    for (let i = index; i > 0; i--) {
      const found = this.term(i);
      if (found === undefined || found <= term) return i;
    }
    return 0;
  }

  /** A follower's append: returns the last new index, or undefined if (index, logTerm) does not match. */
  maybeAppend(index: number, logTerm: number, committed: number, entries: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      if (conflict <= this.committed) throw new Error(`raft: entry ${conflict} conflicts with committed entry ${this.committed}`);
      this.append(entries.slice(conflict - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) throw new Error(`raft: commit ${index} is beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** The leader's commit rule: only an entry of the current term is committed by counting. */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    if (index > this.committed || index < this.applied) {
      throw new Error(`raft: applied ${index} out of range [${this.applied}, ${this.committed}]`);
    }
    this.applied = index;
  }

  /** Committed entries not yet handed to apply. */
  nextCommitted(maxBytes: number): Entry[] {
    const from = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 <= from) return [];
    return this.entries(from, this.committed + 1, maxBytes);
  }

  hasNextCommitted(): boolean {
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  /** The caller persisted entries up to (index, term): drop them from the unstable tail. */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset || this.unstableEntries.length === 0) return;
    const found = this.unstableEntries[index - this.unstableOffset];
    if (found === undefined || found.term !== term) return;
    this.unstableEntries = this.unstableEntries.slice(index + 1 - this.unstableOffset);
    this.unstableOffset = index + 1;
  }

  stableSnapshotTo(index: number): void {
    if (this.unstableSnapshotValue?.metadata.index === index) this.unstableSnapshotValue = undefined;
  }

  /** Replaces the log by a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstableOffset = snapshot.metadata.index + 1;
    this.unstableEntries = [];
    this.unstableSnapshotValue = snapshot;
  }

  snapshot(): Snapshot {
    return this.unstableSnapshotValue ?? this.storage.snapshot();
  }

  /** Whether a candidate's log (lastIndex, lastTerm) is at least as up to date as ours (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }
}
