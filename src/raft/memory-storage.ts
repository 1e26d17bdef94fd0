// An in-memory RaftStorage (etcd-io/raft's MemoryStorage): what the caller has
// persisted, as Raft sees it. The caller appends to it after writing its WAL;
// Raft only reads. entries[0] is a dummy holding the index and term of the
// last snapshot (or 0/0), so `term(firstIndex - 1)` is always answerable.

import { limitSize } from "./entry-size.ts";
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from "./storage-errors.ts";
import type { ConfState, Entry, HardState, RaftStorage, Snapshot } from "./types.ts";
import { EntryType } from "./types.ts";

export { CompactedError, SnapshotOutOfDateError, UnavailableError } from "./storage-errors.ts";

export function emptySnapshot(): Snapshot {
  return { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array() };
}

export class MemoryStorage implements RaftStorage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private currentSnapshot: Snapshot = emptySnapshot();
  private entriesWithDummy: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array() }];

  private get dummy(): Entry {
    return this.entriesWithDummy[0] as Entry;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    const { voters, learners } = this.currentSnapshot.metadata.confState;
    return { hardState: { ...this.hardState }, confState: { voters: [...voters], learners: [...learners] } };
  }

  setHardState(hardState: HardState): void {
    this.hardState = { ...hardState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.dummy.index;
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    return limitSize(this.entriesWithDummy.slice(lo - offset, hi - offset), maxBytes);
  }

  term(index: number): number {
    const offset = this.dummy.index;
    if (index < offset) throw new CompactedError(index);
    const entry = this.entriesWithDummy[index - offset];
    if (entry === undefined) throw new UnavailableError(index);
    return entry.term;
  }

  firstIndex(): number {
    return this.dummy.index + 1;
  }

  lastIndex(): number {
    return this.dummy.index + this.entriesWithDummy.length - 1;
  }

  snapshot(): Snapshot {
    return this.currentSnapshot;
  }

  /** Replaces the whole log by `snapshot` (a follower installing the leader's snapshot). */
  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index < this.currentSnapshot.metadata.index) throw new SnapshotOutOfDateError(index);
    this.currentSnapshot = snapshot;
    this.entriesWithDummy = [{ term, index, type: EntryType.Normal, data: new Uint8Array() }];
  }

  /**
   * Records a snapshot of the applied state at `index` (which must be in the
   * log). Entries stay until `compact` is called.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.currentSnapshot.metadata.index) throw new SnapshotOutOfDateError(index);
    if (index > this.lastIndex()) throw new Error(`snapshot ${index} is out of bound lastindex(${this.lastIndex()})`);
    const term = this.term(index);
    this.currentSnapshot = { metadata: { index, term, confState }, data };
    return this.currentSnapshot;
  }

  /** Discards entries up to and including `compactIndex` (they live in a snapshot). */
  compact(compactIndex: number): void {
    const offset = this.dummy.index;
    if (compactIndex <= offset) throw new CompactedError(compactIndex);
    if (compactIndex > this.lastIndex()) {
      throw new Error(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const kept = this.entriesWithDummy.slice(compactIndex - offset);
    const newDummy = kept[0] as Entry;
    kept[0] = { term: newDummy.term, index: newDummy.index, type: EntryType.Normal, data: new Uint8Array() };
    this.entriesWithDummy = kept;
  }

  /**
   * Appends entries the caller has made durable. Entries overlapping the log
   * replace the conflicting suffix; entries already compacted are skipped.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const lastNew = (entries[0] as Entry).index + entries.length - 1;
    if (lastNew < first) return;
    const toAppend = (entries[0] as Entry).index < first ? entries.slice(first - (entries[0] as Entry).index) : entries;
    const startIndex = (toAppend[0] as Entry).index;
    const offset = startIndex - this.dummy.index;
    if (offset > this.entriesWithDummy.length) {
      throw new Error(`missing log entry [last: ${this.lastIndex()}, append at: ${startIndex}]`);
    }
    // In place: a copy of the whole log per append made each write cost in
    // proportion to the entries held (up to --snapshot-count of them).
    const log = this.entriesWithDummy;
    log.length = offset;
    for (const entry of toAppend) log.push(entry);
  }
}

/**
 * Storage for a fresh node of a new cluster: a snapshot at `index` (term 1)
 * holding the initial membership, the way etcd's bootstrap makes the initial
 * configuration committed before any election.
 */
export function bootstrapStorage(confState: ConfState, index = 1, storage = new MemoryStorage()): MemoryStorage {
  if (confState.voters.length === 0) throw new Error("bootstrap needs at least one voter");
  storage.applySnapshot({ metadata: { index, term: 1, confState }, data: new Uint8Array() });
  storage.setHardState({ term: 1, vote: 0, commit: index });
  return storage;
}
